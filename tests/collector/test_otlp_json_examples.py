"""The OTLP specification's JSON examples are accepted over HTTP and every point and span is stored."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.collector.conftest import count_rows
from usagemeter_clickhouse import SchemaOptions, migrate, tables
from usagemeter_collector._schema import METRICS_EXPONENTIAL_HISTOGRAM

EXAMPLES = Path("/work/shared/otlp-examples")
_DAY_NS = 86_400 * 10**9


def _example(name: str) -> bytes:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"OTLP example {path} is not present on this machine")
    return path.read_bytes()


def _keep_everything_since(start_collector, clickhouse, oldest_ns: int):
    """The examples date from 2018: a collector and tables whose raw retention reaches back that far."""
    days = (time.time_ns() - oldest_ns) // _DAY_NS + 30
    migrate(clickhouse, SchemaOptions(raw_retention_days=days))
    return start_collector(raw_retention_days=days)


def test_metrics_example_is_stored_point_for_point(start_collector, clickhouse):
    body = _example("metrics.json")
    collector = _keep_everything_since(start_collector, clickhouse, 1544712660300000000)
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "rejected" not in response.text

    document = json.loads(body)
    expected: dict[str, int] = {}
    table_of = {
        "sum": tables.METRICS_SUM,
        "gauge": tables.METRICS_GAUGE,
        "histogram": tables.METRICS_HISTOGRAM,
        "exponentialHistogram": METRICS_EXPONENTIAL_HISTOGRAM,
    }
    for resource in document["resourceMetrics"]:
        for scope in resource["scopeMetrics"]:
            for metric in scope["metrics"]:
                kind = next(k for k in table_of if k in metric)
                expected[table_of[kind]] = expected.get(table_of[kind], 0) + len(metric[kind]["dataPoints"])
    assert {table: count_rows(clickhouse, table) for table in expected} == expected

    counter = clickhouse.query(
        f"SELECT ServiceName, ScopeName, ScopeAttributes, MetricName, Value, toUnixTimestamp64Nano(TimeUnix), "
        f"AggregationTemporality, IsMonotonic FROM {tables.METRICS_SUM}"
    ).result_rows
    assert counter == [
        (
            "my.service",
            "my.library",
            {"my.scope.attribute": "some scope attribute"},
            "my.counter",
            5.0,
            1544712660300000000,
            1,
            True,
        )
    ]
    histogram = clickhouse.query(f"SELECT Count, BucketCounts, ExplicitBounds FROM {tables.METRICS_HISTOGRAM}")
    assert histogram.result_rows == [(2, [1, 1], [1.0])]
    exponential = clickhouse.query(
        f"SELECT Count, ZeroCount, PositiveOffset, PositiveBucketCounts FROM {METRICS_EXPONENTIAL_HISTOGRAM}"
    )
    assert exponential.result_rows == [(3, 1, 1, [0, 2])]


def test_trace_example_is_stored_with_hex_ids(start_collector, clickhouse):
    body = _example("trace.json")
    collector = _keep_everything_since(start_collector, clickhouse, 1544712660000000000)
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/traces", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text

    spans = [span for rs in json.loads(body)["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    rows = clickhouse.query(
        f"SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, Duration, ServiceName FROM {tables.TRACES}"
    ).result_rows
    assert len(rows) == len(spans) == 1
    span = spans[0]
    assert rows[0] == (
        span["traceId"].lower(),
        span["spanId"].lower(),
        span["parentSpanId"].lower(),
        span["name"],
        "Server",
        int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]),
        "my.service",
    )
