"""The collector panels of Pipeline health, on the collector's own telemetry as it stores it."""

from __future__ import annotations

import pytest

from tests.grafana import seed_collector
from tests.grafana.conftest import SeededData
from tests.grafana.runner import Runner, all_selected, dashboard_titled, panel_sql, records, scalar
from usagemeter_clickhouse import Client

A, B = seed_collector.INSTANCES
#: Each collector panel and the columns it answers with.
COLUMNS = {
    "Rejected items": ["rejected"],
    "Reject share": ["reject_share"],
    "Spool backlog": ["backlog_bytes"],
    "Insert retries": ["retries"],
    "Accepted items per second": ["time", "accepted_per_second"],
    "Rejects": ["time", "rejected_per_second", "reject_share"],
    "Spool backlog by collector": ["time", "instance", "spool_bytes"],
    "Insert latency": ["time", "average", "slowest"],
    "Insert retries by collector": ["time", "instance", "retries"],
    "Collectors": [
        "instance",
        "last_report",
        "last_report_age_s",
        "accepted",
        "rejected",
        "backlog_bytes",
        "insert_retries",
    ],
}


@pytest.fixture
def runner(clickhouse: Client, seeded: SeededData) -> Runner:
    return Runner(clickhouse, dashboard_titled("Pipeline health"), seeded)


def _only(instance: seed_collector.Instance, runner: Runner) -> dict[str, list[str]]:
    return {**all_selected(runner.dashboard), "instance": [instance.instance_id]}


def test_collector_panels_answer_their_columns(runner: Runner):
    for title, columns in COLUMNS.items():
        result = runner.run(panel_sql(runner.dashboard, title), all_selected(runner.dashboard))
        assert list(result.column_names) == columns, title
        assert result.result_rows, title


def test_instance_variable_offers_every_collector(runner: Runner):
    offered = runner.variable_values("instance", all_selected(runner.dashboard))
    assert offered == sorted(i.instance_id for i in seed_collector.INSTANCES)


def test_rejects_backlog_and_retries_are_exact(runner: Runner):
    everything = all_selected(runner.dashboard)
    sql = {title: panel_sql(runner.dashboard, title) for title in COLUMNS}
    assert scalar(runner, sql["Rejected items"], everything) == seed_collector.rejected(A) + seed_collector.rejected(B)
    assert scalar(runner, sql["Rejected items"], _only(B, runner)) == seed_collector.rejected(B)
    assert scalar(runner, sql["Spool backlog"], everything) == A.backlog_bytes + B.backlog_bytes
    assert scalar(runner, sql["Spool backlog"], _only(A, runner)) == A.backlog_bytes
    assert scalar(runner, sql["Insert retries"], everything) == len(B.retrying)
    share = seed_collector.rejected(A) / (seed_collector.rejected(A) + seed_collector.accepted(A))
    assert scalar(runner, sql["Reject share"], _only(A, runner)) == pytest.approx(share)


def test_insert_latency_is_the_mean_and_the_slowest(runner: Runner):
    rows = records(runner, panel_sql(runner.dashboard, "Insert latency"), all_selected(runner.dashboard))
    mean = seed_collector.INSERT_SECONDS / seed_collector.INSERTS
    assert all(row["average"] == pytest.approx(mean) for row in rows)
    assert {row["slowest"] for row in rows} == {seed_collector.SLOWEST}


def test_collectors_table_has_one_row_per_instance(runner: Runner, seeded: SeededData):
    rows = records(runner, panel_sql(runner.dashboard, "Collectors"), all_selected(runner.dashboard))
    by_instance = {row["instance"]: row for row in rows}
    assert sorted(by_instance) == sorted(i.instance_id for i in seed_collector.INSTANCES)
    for instance in seed_collector.INSTANCES:
        row = by_instance[instance.instance_id]
        assert row["accepted"] == seed_collector.accepted(instance)
        assert row["rejected"] == seed_collector.rejected(instance)
        assert row["backlog_bytes"] == instance.backlog_bytes
        assert row["insert_retries"] == len(instance.retrying)
        # The newest report is 30 s before the seed time, which the clock has passed.
        assert row["last_report_age_s"] >= seed_collector.AGES[0]


def test_client_panels_leave_the_collector_out(runner: Runner):
    services = runner.variable_values("service", all_selected(runner.dashboard))
    assert seed_collector.SERVICE not in services
    rows = records(runner, panel_sql(runner.dashboard, "Metrics by service"), all_selected(runner.dashboard))
    assert rows and all(row["service"] != seed_collector.SERVICE for row in rows)
