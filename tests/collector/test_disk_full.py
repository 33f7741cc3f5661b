"""A full disk under the spool refuses exports as retryable, loses nothing acknowledged, and heals by itself."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.collector.conftest import T0, LoopThread, post_metrics, usage_by_user, usage_point, usage_request, wait_for
from tests.collector.small_disk import Filler, small_disk
from usagemeter_api.domain.system_health import HealthThresholds, collector_reports, health_details
from usagemeter_api.schemas.operations import WorkersReport, WorkerThresholds
from usagemeter_clickhouse import tables
from usagemeter_collector import Collector

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_SERVICE = "usagemeter-collector"


@pytest.fixture
def spool_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "small-disk") as mount:
        yield mount


@pytest.fixture
def full_disk_collector(spool_disk: Path, start_collector: Callable[..., Collector]) -> Callable[..., Collector]:
    """Start a collector whose spool is the small disk (torn down before the disk is unmounted)."""

    def start(**overrides: object) -> Collector:
        return start_collector(spool_dir=spool_disk / "spool", **overrides)

    return start


def _metric(collector: Collector, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{collector.http_port}/metrics", timeout=10).text
    line = next(line for line in text.splitlines() if line.startswith(f"usagemeter_collector_{name} "))
    return float(line.split()[1])


def _grpc_export(collector: Collector, request: object) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=30)


def test_full_disk_refuses_retryably_then_accepts_the_retries_once_space_returns(
    full_disk_collector: Callable[..., Collector], spool_disk: Path, clickhouse: object
) -> None:
    collector = full_disk_collector()
    first = usage_request([usage_point("alice", 5, T0 + 10, start_ns=T0)], temporality=_CUMULATIVE)
    assert post_metrics(collector.http_port, first).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 5.0}

    filler = Filler(spool_disk / "filler")
    filler.fill()
    second = usage_request([usage_point("alice", 9, T0 + 20, start_ns=T0)], temporality=_CUMULATIVE)
    third = usage_request([usage_point("bob", 3, T0 + 30)])
    refused = post_metrics(collector.http_port, second)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "ENOSPC" in refused.text
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(collector, third)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(err.value)
    retry_info = error_details_pb2.RetryInfo()
    assert status is not None and status.details[0].Unpack(retry_info)
    assert retry_info.retry_delay.seconds == 1
    # A retry while the disk is still full is refused again: the refused request was never taken for spooled.
    assert post_metrics(collector.http_port, second).status_code == 503

    health = collector.status()
    assert (health.spool_writable, health.spool_last_error) == (False, "ENOSPC")
    assert health.spool_write_errors >= 3 and "ENOSPC" in health.reasons[0]
    assert _metric(collector, "spool_writable") == 0
    assert _metric(collector, "spool_write_errors") >= 3
    assert _metric(collector, 'spool_last_write_error{error="ENOSPC"}') == 1
    assert collector.spool.appending

    filler.remove()
    assert post_metrics(collector.http_port, second).status_code == 200
    _grpc_export(collector, third)
    assert collector.telemetry.requests_duplicate == 0
    assert usage_by_user(clickhouse) == {"alice": 9.0, "bob": 3.0}
    assert collector.status().spool_writable and collector.status().reasons == []
    assert _metric(collector, "spool_writable") == 1
    assert _metric(collector, 'spool_last_write_error{error="ENOSPC"}') == 0


def test_segment_is_cut_back_to_its_last_acknowledged_record_after_a_failed_write(
    full_disk_collector: Callable[..., Collector], spool_disk: Path, clickhouse: object
) -> None:
    collector = full_disk_collector()
    clickhouse.command(f"DETACH TABLE {tables.METRICS_SUM}")
    filler = Filler(spool_disk / "filler")
    try:
        accepted = [f"user-{i}" for i in range(5)]
        for user in accepted:
            assert post_metrics(collector.http_port, usage_request([usage_point(user, 1, T0)])).status_code == 200
        spool = collector.spool.directory
        before = {path.name: path.stat().st_size for path in spool.glob("*.seg")}
        filler.fill()
        # Larger than any space a partial write could find: the write fails part way through the record.
        big = usage_request([usage_point(f"big-{i}", 1, T0 + i) for i in range(2000)])
        assert post_metrics(collector.http_port, big).status_code == 503
        assert {path.name: path.stat().st_size for path in spool.glob("*.seg")} == before
        filler.remove()
        assert post_metrics(collector.http_port, big).status_code == 200
    finally:
        clickhouse.command(f"ATTACH TABLE {tables.METRICS_SUM}")
    expected = {user: 1.0 for user in accepted} | {f"big-{i}": 1.0 for i in range(2000)}
    assert usage_by_user(clickhouse) == expected


def _reported_write_errors(clickhouse: object) -> float:
    rows = clickhouse.undrained.query(
        f"SELECT sum(Value) FROM {tables.METRICS_SUM} WHERE ServiceName = {{service:String}}"
        " AND MetricName = 'usagemeter.collector.spool_write_errors'",
        parameters={"service": _SERVICE},
    ).result_rows
    return float(rows[0][0] or 0)


def test_own_telemetry_reports_the_write_errors_once_space_returns(
    full_disk_collector: Callable[..., Collector], spool_disk: Path, clickhouse: object, loop_thread: LoopThread
) -> None:
    collector = full_disk_collector(self_telemetry_interval_seconds=0.2)
    filler = Filler(spool_disk / "filler")
    # Kept full while reports come due: each fails, and its growth is carried by the next one.
    assert wait_for(lambda: filler.fill() and collector.telemetry.spool_write_errors >= 3, 30)
    filler.remove()
    assert wait_for(lambda: _reported_write_errors(clickhouse) >= 3, 30)
    loop_thread.run(collector.stop())
    # Every failed write counted exactly once, the ones of the unstorable reports included.
    errors = collector.telemetry.spool_write_errors
    assert _reported_write_errors(clickhouse) == errors

    # The operator's health details (server mode) read the same reports: this collector is degraded.
    now = datetime.now(UTC)
    (report,) = collector_reports(clickhouse.undrained, now)
    assert report.failures == {"usagemeter.collector.spool_write_errors": errors}
    thresholds = HealthThresholds(300, 120, 256 * 1024 * 1024)
    details = health_details(now, now, thresholds, _no_workers(now), [report])
    (service,) = [service for service in details.services if service.name == f"collector {collector.instance_id}"]
    assert service.status == "degraded"
    assert service.detail.endswith(f"in the last hour: {errors} failed spool writes")


def _no_workers(now: datetime) -> WorkersReport:
    limits = WorkerThresholds(
        degraded_after_seconds=60, down_after_seconds=300, failure_ratio=0.2, queue_growth=100, window_seconds=900
    )
    return WorkersReport(status="healthy", generated_at=now, thresholds=limits, workers=[], queues=[])


def test_the_sdks_retries_of_exports_a_full_disk_refused_are_counted_exactly(
    full_disk_collector: Callable[..., Collector], spool_disk: Path, clickhouse: object
) -> None:
    collector = full_disk_collector()
    # The SDK's default: cumulative sums, so each export carries the running total and a lost one would show.
    exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/metrics", timeout=60)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "disk-full-test"}))
    counter = provider.get_meter("tests").create_counter("feature.usage", unit="{use}")
    try:
        counter.add(3, {"user.id": "alice", "feature.key": "chat"})
        assert reader.force_flush(timeout_millis=30_000)
        # Drained first, so the next export needs a new segment: no room left in the last one's disk block.
        assert usage_by_user(clickhouse) == {"alice": 3.0}
        filler = Filler(spool_disk / "filler")
        filler.fill()
        counter.add(4, {"user.id": "alice", "feature.key": "chat"})
        counter.add(2, {"user.id": "bob", "feature.key": "chat"})
        flushed: list[bool] = []
        flush = threading.Thread(target=lambda: flushed.append(reader.force_flush(timeout_millis=60_000)))
        flush.start()
        assert wait_for(lambda: collector.telemetry.requests_refused >= 2, 30)
        filler.remove()
        flush.join(60)
        assert flushed == [True]
    finally:
        provider.shutdown()
    assert collector.telemetry.requests_duplicate == 0
    assert usage_by_user(clickhouse) == {"alice": 7.0, "bob": 2.0}


def _post_concurrently(port: int, request: object, copies: int) -> list[int]:
    """Post ``copies`` of one request at once (most share a write batch); their status codes."""
    statuses: list[int] = []
    start = threading.Barrier(copies)

    def post() -> None:
        start.wait()
        statuses.append(post_metrics(port, request).status_code)

    threads = [threading.Thread(target=post) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def test_resends_arriving_together_share_the_outcome_of_the_first_copy(
    full_disk_collector: Callable[..., Collector], spool_disk: Path, clickhouse: object
) -> None:
    collector = full_disk_collector()
    filler = Filler(spool_disk / "filler")
    filler.fill()
    request = usage_request([usage_point("carol", 5, T0 + 40)])
    # None of them reached the disk, so none may be answered as a duplicate.
    assert _post_concurrently(collector.http_port, request, 12) == [503] * 12
    filler.remove()
    assert _post_concurrently(collector.http_port, request, 12) == [200] * 12
    assert collector.telemetry.requests_duplicate == 11
    assert usage_by_user(clickhouse) == {"carol": 5.0}
