"""Usage counted by the real OTel SDK arrives exactly in the rollups, over gRPC and HTTP, delta and cumulative."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.collector.conftest import SERVICE, count_rows, usage_by_user
from usagemeter_clickhouse import tables

_HOUR_MS = 3_600_000


def _exporter(transport: str, port: int, temporality: AggregationTemporality) -> MetricExporter:
    preferred = {Counter: temporality, UpDownCounter: temporality}
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=f"127.0.0.1:{port}", insecure=True, preferred_temporality=preferred)
    return HttpMetricExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/metrics", compression=Compression.Gzip, preferred_temporality=preferred
    )


@pytest.mark.parametrize("temporality", [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE])
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_usage_sums_are_exact_per_user(collector, clickhouse, transport, temporality):
    port = collector.grpc_port if transport == "grpc" else collector.http_port
    reader = PeriodicExportingMetricReader(_exporter(transport, port, temporality), export_interval_millis=_HOUR_MS)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": SERVICE}))
    try:
        usage = provider.get_meter("tests").create_counter(tables.USAGE_METRIC)
        for amount in (1, 2, 3):
            usage.add(amount, {"user.id": "alice", "feature.key": "chat"})
        usage.add(7, {"user.id": "bob", "feature.key": "chat"})
        assert provider.force_flush(10_000)
        usage.add(4, {"user.id": "alice", "feature.key": "chat"})
        usage.add(5, {"user.id": "alice", "feature.key": "search"})
        assert provider.force_flush(10_000)
        # A collection with nothing new: a cumulative sender repeats its totals, which must add nothing.
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    assert usage_by_user(clickhouse, "chat") == {"alice": 10.0, "bob": 7.0}
    assert usage_by_user(clickhouse, "search") == {"alice": 5.0}
    stored = clickhouse.query(
        f"SELECT DISTINCT AggregationTemporality, IsMonotonic, ServiceName FROM {tables.METRICS_SUM}"
    ).result_rows
    assert stored == [(1, True, SERVICE)]
    assert count_rows(clickhouse, tables.METRICS_SUM) >= 4


def test_sdk_up_down_counter_histogram_and_gauge_are_stored_as_sent(collector, clickhouse):
    exporter = _exporter("grpc", collector.grpc_port, AggregationTemporality.CUMULATIVE)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=_HOUR_MS)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": SERVICE}))
    try:
        meter = provider.get_meter("tests", version="1.2")
        queue = meter.create_up_down_counter("queue.depth")
        queue.add(5, {"queue": "q1"})
        queue.add(-2, {"queue": "q1"})
        meter.create_histogram("latency", unit="ms").record(12.5, {"route": "/a"})
        meter.create_gauge("temperature").set(21.5, {"room": "r1"})
        assert provider.force_flush(10_000)
        _assert_stored_as_sent(clickhouse)
    finally:
        provider.shutdown()


def _assert_stored_as_sent(clickhouse):
    sums = clickhouse.query(
        f"SELECT Value, AggregationTemporality, IsMonotonic, Attributes['queue'], ScopeName, ScopeVersion "
        f"FROM {tables.METRICS_SUM} WHERE MetricName = 'queue.depth'"
    ).result_rows
    assert sums == [(3.0, 2, False, "q1", "tests", "1.2")]
    histogram = clickhouse.query(
        f"SELECT Count, Sum, Min, Max, MetricUnit, Attributes['route'] FROM {tables.METRICS_HISTOGRAM}"
    ).result_rows
    assert histogram == [(1, 12.5, 12.5, 12.5, "ms", "/a")]
    gauge = clickhouse.query(f"SELECT Value, Attributes['room'] FROM {tables.METRICS_GAUGE}").result_rows
    assert gauge == [(21.5, "r1")]
