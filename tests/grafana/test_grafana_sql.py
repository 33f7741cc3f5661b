"""The test expander produces the plugin's own expansions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.grafana.grafana_sql import ALL, ExpansionError, QueryContext, expand

FROM = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TO = datetime(2026, 1, 2, 4, 4, 5, 250_000, tzinfo=UTC)


def _ctx(**selection: list[str]) -> QueryContext:
    return QueryContext(FROM, TO, 30, selection, {"s": ["a", "b", "c"]})


def test_time_macros_match_the_plugin():
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    assert expand("$__timeFilter(t)", _ctx()) == f"t >= toDateTime({start}) AND t <= toDateTime({end})"
    assert expand("$__timeFilter_ms(t)", _ctx()) == (
        f"t >= fromUnixTimestamp64Milli({start}000) AND t <= fromUnixTimestamp64Milli({end}250)"
    )
    assert expand("$__fromTime < $__toTime", _ctx()) == f"toDateTime({start}) < toDateTime({end})"
    assert expand("$__timeInterval(toStartOfMinute(t))", _ctx()) == (
        "toStartOfInterval(toDateTime(toStartOfMinute(t)), INTERVAL 30 second)"
    )
    assert expand("count() / $__interval_s", _ctx()) == "count() / 30"


def test_conditional_all_and_quoted_values():
    sql = "WHERE $__conditionalAll(x IN (${s}), ${s}) AND $__conditionalAll(y IN ($s), $s)"
    assert expand(sql, _ctx(s=[ALL])) == "WHERE 1=1 AND 1=1"
    assert expand(sql, _ctx(s=["a", "b"])) == "WHERE x IN ('a','b') AND y IN ('a','b')"
    assert expand("x IN ($s)", _ctx(s=[ALL])) == "x IN ('a','b','c')"


@pytest.mark.parametrize("sql", ["x = $nope", "$__conditionalAll(x, $nope)", "$__unknownMacro(t)", "$__timeFilter(t"])
def test_what_grafana_could_not_run_is_an_error(sql: str):
    with pytest.raises(ExpansionError):
        expand(sql, _ctx(s=["a"]))
