"""Every panel and variable query, expanded as Grafana would, runs on the real schema with data in it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.conftest import (
    DASHBOARD_FILES,
    FEATURES_BY_SERVICE,
    SERVICES,
    SeededData,
    load_dashboard,
    panels_of,
    query_variables,
    variable_sql,
)
from tests.grafana.grafana_sql import ALL, QueryContext, expand
from usagemeter_clickhouse import Client

INTERVAL_SECONDS = 60
_NUMERIC = ("Int", "UInt", "Float", "Decimal")

dashboards = pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])


def _base_type(type_name: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        while type_name.startswith(wrapper):
            type_name = type_name[len(wrapper) : -1]
    return type_name


def _is_time(type_name: str) -> bool:
    return _base_type(type_name).startswith(("DateTime", "Date"))


def _is_numeric(type_name: str) -> bool:
    return _base_type(type_name).startswith(_NUMERIC)


class Runner:
    """Resolves a dashboard's variables and runs its queries for one selection."""

    def __init__(self, client: Client, dashboard: dict[str, Any], seeded: SeededData) -> None:
        self.client = client
        self.dashboard = dashboard
        self.time_from = seeded.now - timedelta(hours=2)
        self.time_to = seeded.now + timedelta(seconds=1)

    def context(self, selection: dict[str, list[str]]) -> QueryContext:
        options = {name: self.variable_values(name, selection) for name in selection}
        return QueryContext(self.time_from, self.time_to, INTERVAL_SECONDS, selection, options)

    def variable_values(self, name: str, selection: dict[str, list[str]]) -> list[str]:
        variable = next(v for v in query_variables(self.dashboard) if v["name"] == name)
        ctx = QueryContext(self.time_from, self.time_to, INTERVAL_SECONDS, selection)
        result = self.client.query(expand(variable_sql(variable), ctx))
        assert len(result.column_names) >= 1
        return [str(row[0]) for row in result.result_rows]

    def run(self, sql: str, selection: dict[str, list[str]]) -> Any:
        return self.client.query(expand(sql, self.context(selection)))


def _all_selected(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {v["name"]: [ALL] for v in query_variables(dashboard)}


def _selections(runner: Runner) -> Iterator[dict[str, list[str]]]:
    """All on every variable; each variable alone on one value and on two; every variable on one value."""
    everything = _all_selected(runner.dashboard)
    yield everything
    narrowest = dict(everything)
    for name in everything:
        values = runner.variable_values(name, everything)
        assert values, f"variable {name} offers no values for the data inserted"
        yield {**everything, name: values[:1]}
        if len(values) > 1:
            yield {**everything, name: values[:2]}
        narrowed = runner.variable_values(name, narrowest)
        assert narrowed, f"variable {name} offers nothing once earlier variables are chosen"
        narrowest[name] = narrowed[:1]
    yield narrowest


def _check_panel(panel: dict[str, Any], result: Any) -> None:
    types = [t.name for t in result.column_types]
    title = panel["title"]
    assert result.result_rows, f"{title}: no rows"
    if panel["type"] == "timeseries":
        assert any(_is_time(t) for t in types), f"{title}: no time column in {types}"
        assert any(_is_numeric(t) for t in types), f"{title}: no numeric column in {types}"
    elif panel["type"] in ("stat", "gauge"):
        numeric = [i for i, t in enumerate(types) if _is_numeric(t)]
        assert numeric, f"{title}: no numeric column in {types}"
        value = result.result_rows[0][numeric[0]]
        assert value is not None and math.isfinite(value), f"{title}: {value!r}"
    elif panel["type"] in ("barchart", "bargauge", "piechart"):
        assert any(_is_numeric(t) for t in types), f"{title}: no numeric column in {types}"
    else:
        assert types, f"{title}: no columns"


@dashboards
def test_every_query_runs_with_data_for_every_selection(clickhouse: Client, seeded: SeededData, path: Path):
    dashboard = load_dashboard(path)
    runner = Runner(clickhouse, dashboard, seeded)
    selections = list(_selections(runner))
    assert len(selections) >= 1 + len(query_variables(dashboard))
    for selection in selections:
        for panel in panels_of(dashboard):
            for target in panel["targets"]:
                _check_panel(panel, runner.run(target["rawSql"], selection))


def _panel(dashboard: dict[str, Any], title: str) -> str:
    panel = next(p for p in panels_of(dashboard) if p["title"] == title)
    return str(panel["targets"][0]["rawSql"])


def _dashboard(title: str) -> dict[str, Any]:
    return next(d for d in map(load_dashboard, DASHBOARD_FILES) if d["title"] == title)


def _scalar(runner: Runner, sql: str, selection: dict[str, list[str]]) -> Any:
    return runner.run(sql, selection).result_rows[0][0]


def test_usage_totals_follow_the_selection(clickhouse: Client, seeded: SeededData):
    dashboard = _dashboard("Feature usage")
    runner = Runner(clickhouse, dashboard, seeded)
    uses, tokens = _panel(dashboard, "Uses"), _panel(dashboard, "Tokens")
    everything = _all_selected(dashboard)
    cases = [
        (everything, lambda p: True),
        ({**everything, "service": ["batch-worker"]}, lambda p: p.service == "batch-worker"),
        ({**everything, "feature": ["ai_content_generation"]}, lambda p: p.feature == "ai_content_generation"),
        ({**everything, "user": ["alice", "carol"]}, lambda p: p.user in ("alice", "carol")),
        (
            {"service": ["chat-api"], "feature": ["pdf_export"], "user": ["bob"]},
            lambda p: (p.service, p.feature, p.user) == ("chat-api", "pdf_export", "bob"),
        ),
    ]
    for selection, keep in cases:
        assert _scalar(runner, uses, selection) == sum(p.value for p in seeded.usage if keep(p)), selection
        expected_tokens = sum(s.prompt_tokens + s.completion_tokens for s in seeded.spans if keep(s))
        assert _scalar(runner, tokens, selection) == expected_tokens, selection


def test_feature_variable_narrows_to_the_chosen_service(clickhouse: Client, seeded: SeededData):
    runner = Runner(clickhouse, _dashboard("Feature usage"), seeded)
    assert sorted(runner.variable_values("service", {})) == sorted(SERVICES)
    for service, features in FEATURES_BY_SERVICE.items():
        assert runner.variable_values("feature", {"service": [service]}) == sorted(features)
    assert len(runner.variable_values("feature", {"service": [ALL]})) == 2


def test_pipeline_health_figures(clickhouse: Client, seeded: SeededData):
    dashboard = _dashboard("Pipeline health")
    runner = Runner(clickhouse, dashboard, seeded)
    everything = _all_selected(dashboard)
    assert _scalar(runner, _panel(dashboard, "Usage not in rollup"), everything) == 0
    points = _scalar(runner, _panel(dashboard, "Metric points"), everything)
    assert points == len(seeded.usage) + seeded.other_metric_rows
    worker = {"service": ["batch-worker"]}
    assert _scalar(runner, _panel(dashboard, "Metric points"), worker) == sum(
        p.service == "batch-worker" for p in seeded.usage
    )
    # The newest point is 3 minutes old when inserted, so freshness can only be larger.
    assert _scalar(runner, _panel(dashboard, "Metric freshness"), everything) >= 3 * 60
    assert _scalar(runner, _panel(dashboard, "Span freshness"), everything) >= 2 * 60
