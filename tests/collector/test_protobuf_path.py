"""ClickHouse decoding spooled protobuf requests stores exactly the rows the collector's row path stores."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    SummaryDataPoint,
)

from tests.collector.conftest import T0, LoopThread, post_metrics, wait_for
from usagemeter_clickhouse import Client, connect, migrate, tables
from usagemeter_collector import Collector, CollectorSettings

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DOUBLES = (1.0, 0.1, -2.5, 1e-5, 0.0001, 123.456, 1e15, 1e16, 1e20, 1.5e300, 5e-324, -0.0, 0.0, math.inf, math.nan)
_TABLES = (
    tables.METRICS_SUM,
    tables.METRICS_GAUGE,
    tables.METRICS_HISTOGRAM,
    tables.METRICS_EXPONENTIAL_HISTOGRAM,
    tables.METRICS_SUMMARY,
    tables.USAGE_MINUTE,
    tables.USAGE_DAY,
    tables.USAGE_MONTH,
)


def _kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def _every_kind(prefix: str) -> list[KeyValue]:
    """Attributes of every primitive kind, edge values included, and a repeated key (the last wins)."""
    values: list[KeyValue] = [
        _kv(f"{prefix}.str", string_value="text ü"),
        _kv(f"{prefix}.empty", string_value=""),
        _kv(f"{prefix}.unset"),
        _kv(f"{prefix}.true", bool_value=True),
        _kv(f"{prefix}.false", bool_value=False),
        _kv(f"{prefix}.zero", int_value=0),
        _kv(f"{prefix}.int", int_value=-9_007_199_254_740_993),
        _kv(f"{prefix}.bytes", bytes_value=b"\x00\xffid"),
        _kv(f"{prefix}.nobytes", bytes_value=b""),
        _kv(f"{prefix}.dup", string_value="first"),
        _kv(f"{prefix}.dup", int_value=2),
    ]
    values += [_kv(f"{prefix}.double{n}", double_value=value) for n, value in enumerate(_DOUBLES)]
    return values


def _exemplars() -> list[Exemplar]:
    return [
        Exemplar(
            filtered_attributes=[_kv("ex.kind", string_value="a"), _kv("ex.n", double_value=2.5)],
            time_unix_nano=T0 + 5,
            as_double=0.25,
            span_id=bytes.fromhex("00f067aa0ba902b7"),
            trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
        ),
        Exemplar(time_unix_nano=T0 + 6, as_int=-7),
    ]


def _request(seed: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add(schema_url="https://resource/schema")
    resource.resource.attributes.extend([_kv("service.name", string_value="svc"), *_every_kind("res")])
    scope = resource.scope_metrics.add(schema_url="https://scope/schema")
    scope.scope.name, scope.scope.version, scope.scope.dropped_attributes_count = "lib", "1.2", 3
    scope.scope.attributes.extend(_every_kind("scope"))
    time_ns = T0 + seed * 1000
    usage = Metric(name=tables.USAGE_METRIC, description="uses", unit="1")
    usage.sum.aggregation_temporality, usage.sum.is_monotonic = _DELTA, True
    for n in range(4):
        point = usage.sum.data_points.add(start_time_unix_nano=time_ns - 10, time_unix_nano=time_ns + n, flags=n)
        point.attributes.extend([_kv("user.id", string_value=f"u{n}"), _kv("feature.key", string_value="chat")])
        point.attributes.extend(_every_kind("point"))
        if n % 2:
            point.as_int = n + seed
        else:
            point.as_double = n + 0.5
    usage.sum.data_points[0].exemplars.extend(_exemplars())
    # Refused: negative usage, and a point without user.id.
    usage.sum.data_points.add(time_unix_nano=time_ns, as_double=-1).attributes.extend(
        [_kv("user.id", string_value="u9"), _kv("feature.key", string_value="chat")]
    )
    usage.sum.data_points.add(time_unix_nano=time_ns, as_int=1).attributes.append(_kv("feature.key", string_value="x"))
    # Refused too: a value above the maximum per point, an id over the length limit, a time beyond the clock skew.
    for user, value, when in (("u9", 2e15, time_ns), ("u" * 300, 1, time_ns), ("u9", 1, time.time_ns() + 3600 * 10**9)):
        usage.sum.data_points.add(time_unix_nano=when, as_double=value).attributes.extend(
            [_kv("user.id", string_value=user), _kv("feature.key", string_value="chat")]
        )
    running = Metric(name=tables.USAGE_METRIC, unit="1")
    running.sum.aggregation_temporality, running.sum.is_monotonic = _CUMULATIVE, True
    for n, user in enumerate(("c1", "c2")):
        point = running.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=time_ns + 1, as_int=(seed + 1) * 10)
        point.attributes.extend([_kv("user.id", string_value=user), _kv("feature.key", string_value="runs")])
        point.attributes.append(_kv("n", double_value=n / 3))
    huge = running.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=time_ns + 1, as_int=10**16)
    huge.attributes.extend([_kv("user.id", string_value="c3"), _kv("feature.key", string_value="runs")])
    gauge = Metric(name="queue.depth", unit="{item}")
    for n, value in enumerate((3.0, -0.5, 1e300)):
        point = gauge.gauge.data_points.add(start_time_unix_nano=0, time_unix_nano=time_ns + n, as_double=value)
        point.attributes.extend(_every_kind("g"))
    gauge.gauge.data_points.add(time_unix_nano=time_ns, as_int=-4, exemplars=_exemplars())
    scope.metrics.extend([usage, running, gauge, *_distributions(time_ns)])
    return request


def _distributions(time_ns: int) -> list[Metric]:
    histogram = Metric(name="latency", unit="ms")
    histogram.histogram.aggregation_temporality = _CUMULATIVE
    histogram.histogram.data_points.append(
        HistogramDataPoint(
            attributes=[_kv("route", string_value="/a")],
            start_time_unix_nano=T0,
            time_unix_nano=time_ns,
            count=6,
            sum=12.5,
            bucket_counts=[1, 2, 3],
            explicit_bounds=[1.0, 5.0],
            exemplars=_exemplars(),
            flags=1,
            min=0.5,
            max=9.0,
        )
    )
    histogram.histogram.data_points.append(HistogramDataPoint(time_unix_nano=time_ns, count=0))
    exponential = Metric(name="size", unit="By")
    exponential.exponential_histogram.aggregation_temporality = _DELTA
    point = ExponentialHistogramDataPoint(
        attributes=[_kv("kind", bool_value=True)],
        start_time_unix_nano=T0,
        time_unix_nano=time_ns,
        count=7,
        sum=70.0,
        scale=-2,
        zero_count=1,
        exemplars=_exemplars(),
        min=1.0,
        max=30.0,
    )
    point.positive.offset, point.negative.offset = -3, 2
    point.positive.bucket_counts.extend([1, 2, 3])
    point.negative.bucket_counts.extend([1])
    exponential.exponential_histogram.data_points.append(point)
    summary = Metric(name="rpc", unit="s")
    summary.summary.data_points.append(
        SummaryDataPoint(
            attributes=[_kv("method", string_value="get"), _kv("code", int_value=200)],
            start_time_unix_nano=T0,
            time_unix_nano=time_ns,
            count=10,
            sum=3.5,
            quantile_values=[
                SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.2),
                SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=1.5),
            ],
        )
    )
    return [histogram, exponential, summary]


def _rows(client: Client, table: str) -> list[str]:
    # FINAL: the rollups sum rows up in background merges, which run at their own times in each database.
    final = " FINAL" if table in (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH) else ""
    rows = client.query(f"SELECT * FROM {table}{final}").result_rows
    # repr: NaN compares unequal to itself, its repr does not.
    return sorted(repr(row) for row in rows)


@pytest.fixture
def second_database(chdb_url: str, database: str, clickhouse: Any) -> Iterator[str]:
    name = database + "_rows"
    client = connect(chdb_url, name, create_database=True)
    migrate(client)
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name}")
    client.close()


def _collector(url: str, database: str, spool: Path, protobuf: bool) -> Collector:
    settings = CollectorSettings(
        host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        batch_max_delay_seconds=0.05,
        spool_dir=spool,
        protobuf_metrics=protobuf,
        self_telemetry_interval_seconds=0,
    )
    return Collector(lambda: connect(url, database), settings)


def test_protobuf_and_row_paths_store_identical_rows(
    chdb_url: str, database: str, second_database: str, tmp_path: Path, loop_thread: LoopThread
) -> None:
    collectors = {
        database: _collector(chdb_url, database, tmp_path / "protobuf", True),
        second_database: _collector(chdb_url, second_database, tmp_path / "rows", False),
    }
    answers = []
    for collector in collectors.values():
        loop_thread.run(collector.start())
    try:
        for seed in range(3):
            body = _request(seed).SerializeToString()
            for collector in collectors.values():
                response = httpx.post(
                    f"http://127.0.0.1:{collector.http_port}/v1/metrics",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=30,
                )
                answers.append(response.content)
        assert wait_for(lambda: all(c.drained for c in collectors.values()), 60)
    finally:
        for collector in collectors.values():
            loop_thread.run(collector.stop())
    assert answers[0::2] == answers[1::2]  # the same partial successes
    assert collectors[database].telemetry.items_rejected == 18
    protobuf = connect(chdb_url, database)
    rows = connect(chdb_url, second_database)
    for table in _TABLES:
        stored = _rows(protobuf, table)
        assert stored, table
        assert stored == _rows(rows, table), table


def test_requests_with_array_attributes_take_the_row_path(start_collector, clickhouse) -> None:
    collector = start_collector()
    request = _request(0)
    array = AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="b")]))
    point = request.resource_metrics[0].scope_metrics[0].metrics[2].gauge.data_points[0]
    point.attributes.append(KeyValue(key="list", value=array))
    assert post_metrics(collector.http_port, request).status_code == 200
    stored = clickhouse.query(
        f"SELECT Attributes['list'] FROM {tables.METRICS_GAUGE} WHERE mapContains(Attributes, 'list')"
    ).result_rows
    assert stored == [('[1,"b"]',)]
    assert dict(
        clickhouse.query(
            f"SELECT UserId, sum(Quantity) FROM {tables.USAGE_MINUTE} WHERE DimensionKey = '' GROUP BY UserId"
        ).result_rows
    ) == {
        "u0": 0.5,
        "u1": 1.0,
        "u2": 2.5,
        "u3": 3.0,
        "c1": 10.0,
        "c2": 10.0,
    }
