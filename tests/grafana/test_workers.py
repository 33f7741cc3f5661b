"""The Workers dashboard judges each worker instance as the API does, and reads the job metrics exactly."""

from __future__ import annotations

import math
from typing import Any

from tests.grafana.conftest import SeededData
from tests.grafana.grafana_sql import ALL
from tests.grafana.runner import Runner, all_selected, dashboard_titled, panel_sql, records, scalar
from tests.grafana.seed_workers import AVERAGE_DURATION, EXPECTED_STATUS, P95_DURATION, WORKERS
from usagemeter_api.core.config import ApiSettings
from usagemeter_api.domain.workers import worker_report
from usagemeter_api.schemas.operations import WorkerThresholds
from usagemeter_clickhouse import Client, tables


def _runner(clickhouse: Client, seeded: SeededData) -> Runner:
    return Runner(clickhouse, dashboard_titled("Workers"), seeded)


def _status_rows(runner: Runner, selection: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    rows = records(runner, panel_sql(runner.dashboard, "Worker status"), selection)
    assert len({row["worker"] for row in rows}) == len(rows)
    return {str(row["worker"]): row for row in rows}


def _api_default_thresholds() -> WorkerThresholds:
    """The thresholds the API runs with unless configured otherwise, which the dashboard repeats."""
    defaults = {name: field.default for name, field in ApiSettings.model_fields.items()}
    return WorkerThresholds(
        degraded_after_seconds=defaults["worker_degraded_after_seconds"],
        down_after_seconds=defaults["worker_down_after_seconds"],
        failure_ratio=defaults["worker_failure_ratio"],
        queue_growth=defaults["worker_queue_growth"],
        window_seconds=defaults["worker_window_seconds"],
    )


def test_each_worker_gets_the_status_it_was_built_for(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    rows = _status_rows(runner, all_selected(runner.dashboard))
    assert {worker: row["status"] for worker, row in rows.items()} == EXPECTED_STATUS
    assert rows["reports-1"]["reasons"] == ""
    assert rows["emails-1"]["reasons"].startswith("no heartbeat for 636 s")
    assert "28 % of jobs failed" in rows["emails-2"]["reasons"]
    assert "queue grew by 150 jobs" in rows["exports-1"]["reasons"]
    assert rows["reports-2"]["reasons"] == "heartbeat 216 s old"
    everything = all_selected(runner.dashboard)
    counts = {title: scalar(runner, panel_sql(runner.dashboard, title), everything) for title in ("Down", "Degraded")}
    counts["Healthy"] = scalar(runner, panel_sql(runner.dashboard, "Healthy"), everything)
    assert counts == {"Down": 1, "Degraded": 3, "Healthy": 1}


def test_the_dashboard_agrees_with_the_api(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    report = worker_report(clickhouse, runner.time_to, _api_default_thresholds())
    rows = _status_rows(runner, all_selected(runner.dashboard))
    assert {item.worker_id for item in report.workers} == set(rows)
    for item in report.workers:
        row = rows[item.worker_id]
        assert (row["queue"], row["service"], row["status"]) == (item.queue, item.service_name, item.status)
        assert row["heartbeat_age_s"] == item.heartbeat_age_seconds
        assert (row["completed"], row["failed"]) == (item.jobs_completed, item.jobs_failed)
        assert row["failure_rate"] == item.failure_rate
        assert row["jobs_per_minute"] == item.throughput_per_minute


def test_the_selection_narrows_the_status(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    everything = all_selected(runner.dashboard)
    assert set(_status_rows(runner, {**everything, "worker": ["reports-1"]})) == {"reports-1"}
    assert set(_status_rows(runner, {**everything, "service": ["mail-worker"]})) == {"emails-1", "emails-2"}
    assert runner.variable_values("queue", {"service": ["report-worker"]}) == ["exports", "reports"]
    assert runner.variable_values("worker", {"service": [ALL], "queue": ["reports"]}) == ["reports-1", "reports-2"]


def test_job_counts_failures_and_durations(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    everything = all_selected(runner.dashboard)
    jobs = [p for p in seeded.other_sums if p.metric == tables.WORKER_JOBS_METRIC]
    failed = sum(p.value for p in jobs if p.attributes[tables.JOB_STATUS_ATTRIBUTE] == "failed")
    finished = sum(p.value for p in jobs)
    assert scalar(runner, panel_sql(runner.dashboard, "Jobs finished"), everything) == finished
    assert scalar(runner, panel_sql(runner.dashboard, "Failed jobs"), everything) == failed
    assert math.isclose(scalar(runner, panel_sql(runner.dashboard, "Failure ratio"), everything), failed / finished)
    per_status: dict[str, float] = {}
    for row in records(runner, panel_sql(runner.dashboard, "Jobs by status"), everything):
        per_status[row["status"]] = per_status.get(row["status"], 0.0) + row["jobs"]
    assert per_status == {"completed": finished - failed, "failed": failed}
    average = records(runner, panel_sql(runner.dashboard, "Average job duration"), everything)
    assert {row["job"] for row in average} == {w.job for w in WORKERS}
    assert all(math.isclose(row["average_seconds"], AVERAGE_DURATION) for row in average)
    p95 = records(runner, panel_sql(runner.dashboard, "p95 job duration"), everything)
    assert p95 and all(math.isclose(row["p95_seconds"], P95_DURATION) for row in p95)
