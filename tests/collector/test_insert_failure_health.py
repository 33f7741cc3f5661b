"""A collector whose inserts fail, or whose unsent data grows old, shows so in health; restarts keep its identity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.collector.conftest import T0, DrainedClient, LoopThread, post_metrics, usage_point, usage_request, wait_for
from usagemeter_api.domain.collector_probes import CollectorProbe
from usagemeter_api.domain.system_health import CollectorReport, HealthThresholds, collector_reports, health_details
from usagemeter_api.schemas.operations import ServiceHealth, WorkersReport, WorkerThresholds
from usagemeter_clickhouse import Client
from usagemeter_collector import Collector, first_line
from usagemeter_collector._drain.landing import LANDING_TABLES, MESSAGE, SCHEMA_FILE, bundled_schema_path, format_schema

LANDING_SUM = LANDING_TABLES["sum"]

THRESHOLDS = HealthThresholds(
    ingest_stale_after_seconds=300,
    collector_stale_after_seconds=60,
    collector_backlog_bytes=256 * 1024 * 1024,
    collector_unsent_after_seconds=120,
)


def _no_workers(now: datetime) -> WorkersReport:
    limits = WorkerThresholds(
        degraded_after_seconds=60, down_after_seconds=300, failure_ratio=0.2, queue_growth=100, window_seconds=900
    )
    return WorkersReport(status="healthy", generated_at=now, thresholds=limits, workers=[], queues=[])


def _service(client: Client, instance: str | None) -> ServiceHealth | None:
    now = datetime.now(UTC)
    details = health_details(now, now, THRESHOLDS, _no_workers(now), collector_reports(client, now))
    return next((service for service in details.services if service.name == f"collector {instance}"), None)


def test_the_default_format_schema_is_the_shipped_path_embedded_and_its_name_against_a_server() -> None:
    assert format_schema(None) == f"{bundled_schema_path()}:{MESSAGE}"
    assert bundled_schema_path().is_absolute()
    assert (
        format_schema(None, server=True)
        == f"{SCHEMA_FILE}:{MESSAGE}"
        == "otlp_metrics.proto:ExportMetricsServiceRequest"
    )
    assert format_schema("/etc/schemas/otlp.proto", server=True) == f"/etc/schemas/otlp.proto:{MESSAGE}"


def test_an_insert_error_reads_as_clickhouses_own_message(clickhouse: DrainedClient) -> None:
    with pytest.raises(Exception) as raised:
        clickhouse.undrained.query("SELECT * FROM a_table_that_is_not_there")
    line = first_line(raised.value)
    assert line.startswith("Code: 60.") and "a_table_that_is_not_there" in line and "\n" not in line


def test_a_collector_whose_usage_inserts_fail_shows_down_with_the_error_past_its_stuck_spool(
    start_collector: Callable[..., Collector], clickhouse: DrainedClient
) -> None:
    client = clickhouse.undrained
    collector = start_collector(self_telemetry_interval_seconds=0.2)
    # The usage (and self-telemetry) insert fails on its missing landing table; a plain gauge row still goes in.
    client.command(f"DETACH TABLE {LANDING_SUM}")
    try:
        assert post_metrics(collector.http_port, usage_request([usage_point("ana", 4, T0)])).status_code == 200
        service = wait_for(
            lambda: (found := _service(client, collector.instance_id)) and "failing" in found.detail and found, 30
        )
        assert service, "the failing collector never showed in health"
        assert service.status == "down"
        assert service.detail.startswith(f"inserts failing: {collector.telemetry.insert_last_error}; oldest unsent")
        assert LANDING_SUM in service.detail
        # A token brings the reasons' sentences; this collector has none configured, so it takes any (as on ingest).
        headers = {"authorization": "Bearer any"}
        health = httpx.get(f"http://127.0.0.1:{collector.http_port}/health", headers=headers, timeout=5).json()
        assert health["status"] == "degraded" and health["insert_failing"] is True
        assert health["reasons"][0].startswith("inserts into ClickHouse failing since")
        assert collector.telemetry.render().count("usagemeter_collector_insert_failing 1\n") == 1
    finally:
        client.command(f"ATTACH TABLE {LANDING_SUM}")
    recovered = wait_for(lambda: (found := _service(client, collector.instance_id)) and found.status == "healthy", 30)
    assert recovered, _service(client, collector.instance_id)
    assert collector.status().reasons == []
    assert "usagemeter_collector_insert_failing 0\n" in collector.telemetry.render()


def test_unsent_data_older_than_the_threshold_makes_a_collector_degraded_with_its_age() -> None:
    now = datetime.now(UTC)
    reports = [
        CollectorReport("slow", now, 1024.0, oldest_unsent_seconds=312.4),
        CollectorReport("quick", now, 1024.0, oldest_unsent_seconds=3.0),
    ]
    details = health_details(now, now, THRESHOLDS, _no_workers(now), reports)
    by_name = {service.name: service for service in details.services}
    assert by_name["collector slow"].status == "degraded"
    assert by_name["collector slow"].detail.startswith("oldest unsent data 312 s old (degraded above 120 s)")
    assert by_name["collector quick"].status == "healthy"


def test_a_restarted_collector_keeps_its_instance_id_and_another_spool_gets_another(
    start_collector: Callable[..., Collector], loop_thread: LoopThread, tmp_path: Path
) -> None:
    first = start_collector(self_telemetry_interval_seconds=5)
    instance = first.instance_id
    loop_thread.run(first.stop())
    again = start_collector(self_telemetry_interval_seconds=5)
    other = start_collector(self_telemetry_interval_seconds=5, spool_dir=tmp_path / "other-spool")
    assert instance is not None and again.instance_id == instance
    assert other.instance_id not in (None, instance)


def test_collectors_asked_directly_are_judged_by_their_answer_and_one_that_is_silent_is_down() -> None:
    now = datetime.now(UTC)
    probes = [
        CollectorProbe("http://quiet:4318"),  # its self-telemetry is off: no instance, nothing in ClickHouse
        CollectorProbe("http://refused:4318", instance="refused", insert_error="Code: 516. Authentication failed"),
        CollectorProbe("http://gone:4318", unreachable="Connection refused"),
    ]
    details = health_details(now, now, THRESHOLDS, _no_workers(now), [], probes)
    by_name = {service.name: (service.status, service.detail) for service in details.services}
    assert by_name["collector at http://quiet:4318"] == ("healthy", "spool backlog 0.0 MiB")
    assert by_name["collector refused"] == (
        "down",
        "inserts failing: Code: 516. Authentication failed; oldest unsent data 0 s old; spool backlog 0.0 MiB",
    )
    assert by_name["collector at http://gone:4318"] == ("down", "health check unanswered: Connection refused")


def test_a_silent_url_that_named_an_instance_marks_that_instance_down_instead_of_adding_an_entry() -> None:
    now = datetime.now(UTC)
    reports = [CollectorReport("stopped", now, 0.0), CollectorReport("moved", now, 0.0)]
    probes = [
        CollectorProbe("http://a:4318", instance="stopped", unreachable="Connection refused"),
        CollectorProbe("http://b:4318", instance="moved", unreachable="Connection refused"),
        CollectorProbe("http://c:4318", instance="moved"),  # the same instance answers at another URL
        CollectorProbe("http://never:4318", unreachable="timed out"),
    ]
    details = health_details(now, now, THRESHOLDS, _no_workers(now), reports, probes)
    by_name = {service.name: (service.status, service.detail) for service in details.services[2:]}
    assert by_name == {
        "collector stopped": ("down", "health check unanswered: Connection refused; spool backlog 0.0 MiB"),
        "collector moved": ("healthy", "spool backlog 0.0 MiB"),
        "collector at http://never:4318": ("down", "health check unanswered: timed out"),
    }
