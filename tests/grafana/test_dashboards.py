"""The shipped dashboard JSON is well-formed and consistent with the provisioned datasource."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.conftest import (
    DASHBOARD_FILES,
    PLUGIN_TYPE,
    load_dashboard,
    panels_of,
    provisioned_datasource,
    query_variables,
    variable_sql,
)
from tests.grafana.grafana_sql import FRONTEND_MACROS, SUPPORTED_MACROS, macros_in, variables_in

#: Panel types the tests know how to check, with the query format each needs (0 time series, 1 table).
PANEL_FORMATS = {"timeseries": 0, "stat": 1, "gauge": 1, "table": 1, "barchart": 1, "bargauge": 1, "piechart": 1}
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
#: Macros that tie a query to the dashboard's time range.
TIME_MACROS = ("$__timeFilter", "$__fromTime", "$__toTime")
#: Plans and assignments are a catalog, not telemetry: a query of them alone has no time range.
CATALOG_FROM = re.compile(r"\bFROM\s+(\w+)")
CATALOG_TABLES = {"plans", "plan_assignments"}

dashboards = pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])


def _datasource_refs(node: Any) -> list[Any]:
    """Every ``datasource`` value anywhere in the document."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found.extend(_datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasource_refs(item))
    return found


def _panel_sql(dashboard: dict[str, Any]) -> list[str]:
    return [t["rawSql"] for p in panels_of(dashboard) for t in p["targets"]]


def test_there_are_dashboards():
    names = {load_dashboard(p)["title"] for p in DASHBOARD_FILES}
    assert {"Feature usage", "Pipeline health", "Quotas", "Workers"} <= names


def test_uids_and_titles_are_fixed_and_unique():
    docs = [load_dashboard(p) for p in DASHBOARD_FILES]
    uids = [d["uid"] for d in docs]
    assert all(isinstance(u, str) and UID.match(u) for u in uids), uids
    assert len(set(uids)) == len(uids)
    assert len({d["title"] for d in docs}) == len(docs)
    assert all(d["id"] is None for d in docs)


@dashboards
def test_panels_are_well_formed(path: Path):
    dashboard = load_dashboard(path)
    panels = panels_of(dashboard)
    assert panels
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"duplicate panel ids {Counter(ids)}"
    for panel in panels:
        assert panel["type"] in PANEL_FORMATS, panel["type"]
        assert panel["title"] and set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["editorType"] == "sql" and target["rawSql"].strip()
            assert target["format"] == PANEL_FORMATS[panel["type"]], panel["title"]


@dashboards
def test_every_datasource_reference_is_the_provisioned_one(path: Path):
    source = provisioned_datasource()
    refs = _datasource_refs(load_dashboard(path))
    assert refs
    for ref in refs:
        assert ref == {"type": PLUGIN_TYPE, "uid": source["uid"]}, ref


@dashboards
def test_variables_are_defined_used_and_all_capable(path: Path):
    dashboard = load_dashboard(path)
    variables = query_variables(dashboard)
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert len(set(names)) == len(names)
    used_by_panels = set().union(*(variables_in(sql) for sql in _panel_sql(dashboard)))
    assert used_by_panels <= set(names), f"undefined: {used_by_panels - set(names)}"
    assert set(names) <= used_by_panels, f"orphan variables: {set(names) - used_by_panels}"
    for position, variable in enumerate(variables):
        # Multi-value variables are the ones Grafana single-quotes; All feeds $__conditionalAll.
        assert variable["includeAll"] and variable["multi"], variable["name"]
        assert variable["current"]["value"] == ["$__all"], variable["name"]
        earlier = {v["name"] for v in variables[:position]}
        assert variables_in(variable_sql(variable)) <= earlier, f"{variable['name']} depends on a later variable"


def _reads_only_the_catalog(sql: str) -> bool:
    return set(CATALOG_FROM.findall(sql)) <= CATALOG_TABLES


@dashboards
def test_only_macros_the_plugin_expands(path: Path):
    dashboard = load_dashboard(path)
    for text in _panel_sql(dashboard):
        assert macros_in(text) <= SUPPORTED_MACROS | FRONTEND_MACROS, text
        assert any(m in text for m in TIME_MACROS), f"panel query ignores the time range: {text}"
    for variable in query_variables(dashboard):
        text = variable_sql(variable)
        assert macros_in(text) <= SUPPORTED_MACROS | FRONTEND_MACROS, text
        assert any(m in text for m in TIME_MACROS) or _reads_only_the_catalog(text), f"ignores the time range: {text}"
