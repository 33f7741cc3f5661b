"""Run a dashboard's queries as Grafana would: variables resolved, macros expanded, on the real engine."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from tests.grafana.conftest import DASHBOARD_FILES, SeededData, load_dashboard, panels_of, query_variables, variable_sql
from tests.grafana.grafana_sql import ALL, QueryContext, expand
from usagemeter_clickhouse import Client

INTERVAL_SECONDS = 60
_NUMERIC = ("Int", "UInt", "Float", "Decimal")


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


def all_selected(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {v["name"]: [ALL] for v in query_variables(dashboard)}


def selections(runner: Runner) -> Iterator[dict[str, list[str]]]:
    """All on every variable; each variable alone on one value and on two; every variable on one value."""
    everything = all_selected(runner.dashboard)
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


def check_panel(panel: dict[str, Any], result: Any) -> None:
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


def panel_sql(dashboard: dict[str, Any], title: str) -> str:
    panel = next(p for p in panels_of(dashboard) if p["title"] == title)
    return str(panel["targets"][0]["rawSql"])


def dashboard_titled(title: str) -> dict[str, Any]:
    return next(d for d in map(load_dashboard, DASHBOARD_FILES) if d["title"] == title)


def scalar(runner: Runner, sql: str, selection: dict[str, list[str]]) -> Any:
    return runner.run(sql, selection).result_rows[0][0]


def records(runner: Runner, sql: str, selection: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The rows of a query as column name -> value."""
    result = runner.run(sql, selection)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
