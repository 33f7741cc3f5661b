"""The pipeline alert rules fire on exactly the collectors the API's health details call down, stuck or behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.grafana import alerting
from tests.grafana.rows import ns
from usagemeter_api import ApiSettings
from usagemeter_api.domain.system_health import (
    INSERT_FAILING_METRIC,
    OLDEST_UNSENT_METRIC,
    SPOOL_BYTES_METRIC,
    HealthThresholds,
    collector_reports,
    health_details,
)
from usagemeter_api.schemas.operations import WorkersReport, WorkerThresholds
from usagemeter_clickhouse import Client, connect, migrate, tables

SERVICE = "usagemeter-collector"
ERROR = "Code: 60. DB::Exception: Table usagemeter.otel_metrics_landing does not exist. (UNKNOWN_TABLE) (version 25.8)"
DOWN, FAILING, UNSENT = (
    "usagemeter-collector-down",
    "usagemeter-collector-inserts-failing",
    "usagemeter-collector-unsent-data",
)
#: Instance -> its rows: (metric, seconds before now, value, error). Margins to every threshold are minutes wide.
SCENARIOS: dict[str, list[tuple[str, int, float, str]]] = {
    "healthy": [(SPOOL_BYTES_METRIC, 1, 0.0, ""), (OLDEST_UNSENT_METRIC, 1, 0.0, "")],
    "silent": [(SPOOL_BYTES_METRIC, 600, 0.0, ""), (OLDEST_UNSENT_METRIC, 600, 0.0, "")],
    # Its inserts fail: its reports stop, its status rows keep coming, the unsent data ages.
    "stuck": [
        (SPOOL_BYTES_METRIC, 300, 4096.0, ""),
        (OLDEST_UNSENT_METRIC, 300, 5.0, ""),
        (INSERT_FAILING_METRIC, 240, 65.0, ERROR),
        (INSERT_FAILING_METRIC, 1, 304.0, ERROR),
    ],
    # A report newer than its failing rows was inserted: it recovered.
    "recovered": [
        (INSERT_FAILING_METRIC, 100, 30.0, ERROR),
        (SPOOL_BYTES_METRIC, 1, 0.0, ""),
        (OLDEST_UNSENT_METRIC, 1, 0.0, ""),
    ],
    "behind": [(SPOOL_BYTES_METRIC, 1, 1 << 20, ""), (OLDEST_UNSENT_METRIC, 1, 500.0, "")],
    # Never reported in the last hour, only its failing rows arrive.
    "unreported": [
        (INSERT_FAILING_METRIC, 1, 20.0, "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT)")
    ],
}
#: Last seen two days ago: past the day the down rule looks back on.
GONE = [(SPOOL_BYTES_METRIC, 2 * 86400, 0.0, "")]
#: How the health details word the age of a collector's oldest unsent data.
_UNSENT_AGE = re.compile(r"oldest unsent data (\d+) s old")


def _rows(instance: str, entries: list[tuple[str, int, float, str]], now: datetime) -> list[list[object]]:
    resource = {"service.name": SERVICE, "service.instance.id": instance, "host.name": "collector-host"}
    rows: list[list[object]] = []
    for metric, age, value, error in entries:
        at = ns(now - timedelta(seconds=age))
        rows.append([resource, SERVICE, metric, "s", {"error": error} if error else {}, at, at, value])
    return rows


def _database(chdb_url: str) -> Client:
    client = connect(chdb_url, f"t_alerts_{uuid.uuid4().hex[:8]}", create_database=True)
    migrate(client)
    return client


@pytest.fixture(scope="module")
def collectors(chdb_url: str) -> Iterator[Client]:
    """A database holding every scenario's self-telemetry, as collectors and their failure rows store it."""
    client = _database(chdb_url)
    now = datetime.now(UTC)
    rows = [row for name, entries in {**SCENARIOS, "gone": GONE}.items() for row in _rows(name, entries, now)]
    columns = ["ResourceAttributes", "ServiceName", "MetricName", "MetricUnit", "Attributes", "StartTimeUnix"]
    client.insert(tables.METRICS_GAUGE, rows, column_names=[*columns, "TimeUnix", "Value"])
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{client.database}`")
    client.close()


def test_a_collector_that_stopped_reporting_fires_and_a_reporting_one_does_not(collectors: Client):
    found = alerting.firing(collectors, alerting.rule(DOWN), "instance")
    assert set(found) == {"silent", "stuck", "unreported"}
    assert found["silent"] >= 600 and found["stuck"] >= 300
    # Never reported within the day looked back on: the cap.
    assert found["unreported"] == 86400
    everyone = {i.labels["instance"] for i in alerting.evaluate(collectors, alerting.rule(DOWN))}
    assert everyone == set(SCENARIOS), "a collector silent for over a day is no longer judged"


def test_failing_inserts_fire_with_the_error_name_until_a_newer_report(collectors: Client):
    instances = alerting.evaluate(collectors, alerting.rule(FAILING))
    assert {(i.labels["instance"], i.labels["error"]) for i in instances if i.firing} == {
        ("stuck", "UNKNOWN_TABLE"),
        ("unreported", "CANNOT_PARSE_INPUT"),
    }
    assert all(i.firing for i in instances)


def test_old_unsent_data_fires_from_reports_and_from_failing_rows(collectors: Client):
    found = alerting.firing(collectors, alerting.rule(UNSENT), "instance")
    assert set(found) == {"behind", "stuck"}
    assert found["behind"] == 500.0
    # The failing row's age, grown since it was stored.
    assert found["stuck"] >= 305.0
    judged = {i.labels["instance"]: i.value for i in alerting.evaluate(collectors, alerting.rule(UNSENT))}
    assert judged["healthy"] == judged["recovered"] == 0.0


def _api_findings(client: Client) -> dict[str, str]:
    """Each collector's health details entry, judged with the API's default thresholds."""
    settings = ApiSettings.model_fields
    thresholds = HealthThresholds(
        ingest_stale_after_seconds=settings["ingest_stale_after_seconds"].default,
        collector_stale_after_seconds=settings["collector_stale_after_seconds"].default,
        collector_backlog_bytes=settings["collector_backlog_degraded_bytes"].default,
        collector_unsent_after_seconds=settings["collector_unsent_degraded_seconds"].default,
    )
    now = datetime.now(UTC)
    workers = WorkersReport(
        status="healthy",
        generated_at=now,
        thresholds=WorkerThresholds(
            degraded_after_seconds=1, down_after_seconds=2, failure_ratio=0.5, queue_growth=1, window_seconds=60
        ),
        workers=[],
        queues=[],
    )
    details = health_details(now, now, thresholds, workers, collector_reports(client, now))
    prefix = "collector "
    return {s.name.removeprefix(prefix): s.detail for s in details.services if s.name.startswith(prefix)}


def test_the_rules_agree_with_the_apis_health_details(collectors: Client):
    findings = _api_findings(collectors)
    assert set(findings) == set(SCENARIOS)
    down = {name for name, detail in findings.items() if "last report" in detail or "no self-report" in detail}
    failing = {name for name, detail in findings.items() if "inserts failing" in detail}
    ages = {name: _UNSENT_AGE.search(detail) for name, detail in findings.items()}
    limit = ApiSettings.model_fields["collector_unsent_degraded_seconds"].default
    unsent = {name for name, age in ages.items() if age is not None and float(age[1]) > limit}
    assert set(alerting.firing(collectors, alerting.rule(DOWN), "instance")) == down
    assert set(alerting.firing(collectors, alerting.rule(FAILING), "instance")) == failing
    assert set(alerting.firing(collectors, alerting.rule(UNSENT), "instance")) == unsent


def test_without_any_self_telemetry_the_down_rule_has_no_data_and_alerts(chdb_url: str):
    client = _database(chdb_url)
    try:
        for alert_rule in alerting.rules():
            assert alerting.evaluate(client, alert_rule) == [], alert_rule["title"]
        assert alerting.rule(DOWN)["noDataState"] == "Alerting"
        assert {alerting.rule(uid)["noDataState"] for uid in (FAILING, UNSENT)} == {"OK"}
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{client.database}`")
        client.close()
