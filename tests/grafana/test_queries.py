"""Every panel and variable query, expanded as Grafana would, runs on the real schema with data in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.grafana.conftest import (
    CONVERSIONS,
    CORRECTIONS,
    DASHBOARD_FILES,
    EARLIER_CONVERSIONS,
    FEATURES_BY_SERVICE,
    SERVICES,
    SeededData,
    load_dashboard,
    panels_of,
    query_variables,
)
from tests.grafana.grafana_sql import ALL
from tests.grafana.runner import (
    Runner,
    all_selected,
    check_panel,
    dashboard_titled,
    panel_sql,
    records,
    scalar,
    selections,
)
from usagemeter_clickhouse import Client

dashboards = pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])


@dashboards
def test_every_query_runs_with_data_for_every_selection(clickhouse: Client, seeded: SeededData, path: Path):
    dashboard = load_dashboard(path)
    runner = Runner(clickhouse, dashboard, seeded)
    every = list(selections(runner))
    assert len(every) >= 1 + len(query_variables(dashboard))
    for selection in every:
        for panel in panels_of(dashboard):
            for target in panel["targets"]:
                check_panel(panel, runner.run(target["rawSql"], selection))


def test_usage_totals_follow_the_selection(clickhouse: Client, seeded: SeededData):
    dashboard = dashboard_titled("Feature usage")
    runner = Runner(clickhouse, dashboard, seeded)
    uses, tokens = panel_sql(dashboard, "Uses"), panel_sql(dashboard, "Tokens")
    everything = all_selected(dashboard)
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
        assert scalar(runner, uses, selection) == sum(p.value for p in seeded.usage if keep(p)), selection
        expected_tokens = sum(s.prompt_tokens + s.completion_tokens for s in seeded.spans if keep(s))
        assert scalar(runner, tokens, selection) == expected_tokens, selection


def test_feature_variable_narrows_to_the_chosen_service(clickhouse: Client, seeded: SeededData):
    runner = Runner(clickhouse, dashboard_titled("Feature usage"), seeded)
    assert sorted(runner.variable_values("service", {})) == sorted(SERVICES)
    for service, features in FEATURES_BY_SERVICE.items():
        assert runner.variable_values("feature", {"service": [service]}) == sorted(features)
    assert len(runner.variable_values("feature", {"service": [ALL]})) == 2


def test_pipeline_health_figures(clickhouse: Client, seeded: SeededData):
    dashboard = dashboard_titled("Pipeline health")
    runner = Runner(clickhouse, dashboard, seeded)
    everything = all_selected(dashboard)
    assert scalar(runner, panel_sql(dashboard, "Usage not in rollup"), everything) == 0
    points = scalar(runner, panel_sql(dashboard, "Metric points"), everything)
    assert points == len(seeded.usage) + len(seeded.other_sums)
    for service in ("batch-worker", "mail-worker"):
        expected = sum(p.service == service for p in [*seeded.usage, *seeded.other_sums])
        assert scalar(runner, panel_sql(dashboard, "Metric points"), {"service": [service]}) == expected
    # Freshness is measured against the clock, which only moves on after the insert.
    newest = max(p.time_ns for p in [*seeded.usage, *seeded.other_sums]) // 1_000_000_000
    assert scalar(runner, panel_sql(dashboard, "Metric freshness"), everything) >= seeded.now.timestamp() - newest
    assert scalar(runner, panel_sql(dashboard, "Span freshness"), everything) >= 2 * 60


def test_conversions_in_the_business_row(clickhouse: Client, seeded: SeededData):
    dashboard = dashboard_titled("Feature usage")
    runner = Runner(clickhouse, dashboard, seeded)
    everything = all_selected(dashboard)
    total = sum(value for _, _, value in CONVERSIONS)
    # Everything reported today; the 100 signups of last month are in neither total.
    assert scalar(runner, panel_sql(dashboard, "Conversions"), everything) == total
    assert scalar(runner, panel_sql(dashboard, "Conversions this month"), everything) == total
    earlier = sum(value for _, _, value in EARLIER_CONVERSIONS)
    assert scalar(runner, panel_sql(dashboard, "Conversions all time"), everything) == total + earlier
    rows = records(runner, panel_sql(dashboard, "Conversions by name"), everything)
    assert {row["conversion"]: row["conversions"] for row in rows} == {"lead": 9.0, "signup": 3.0, "upgrade": 2.0}
    worker_only = {**everything, "service": ["batch-worker"]}
    assert scalar(runner, panel_sql(dashboard, "Conversions this month"), worker_only) == 4.0


def test_usage_by_dimension_value_sums_each_model_in_the_features_unit(clickhouse: Client, seeded: SeededData):
    dashboard = dashboard_titled("Feature usage")
    runner = Runner(clickhouse, dashboard, seeded)
    rows = records(runner, panel_sql(dashboard, "Usage by dimension value"), all_selected(dashboard))
    expected: dict[tuple[str, str], float] = {}
    for p in seeded.usage:
        expected[(p.feature, p.model)] = expected.get((p.feature, p.model), 0) + p.value
    assert {(row["feature"], row["value"]): row["quantity"] for row in rows} == expected
    assert {(row["dimension"], row["unit"]) for row in rows} == {("model", "uses")}


def test_corrections_are_listed_with_their_reason_and_who_recorded_them(clickhouse: Client, seeded: SeededData):
    dashboard = dashboard_titled("Feature usage")
    runner = Runner(clickhouse, dashboard, seeded)
    rows = records(runner, panel_sql(dashboard, "Corrections"), {**all_selected(dashboard), "user": ["alice"]})
    assert sorted((row["feature"], row["amount"], row["reason"], row["recorded_by"]) for row in rows) == sorted(
        (feature, float(amount), reason, "operator")
        for feature in {p.feature for p in seeded.usage if p.user == "alice"}
        for amount, reason in CORRECTIONS
    )
    # A correction and its undoing: every usage total is as if neither had been recorded.
    assert scalar(runner, panel_sql(dashboard, "Uses"), all_selected(dashboard)) == sum(p.value for p in seeded.usage)
