"""Invalid usage points and spans are rejected with OTLP partial success; the rest of the request is stored."""

from __future__ import annotations

import math

import grpc
import httpx
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.conftest import T0, count_rows, usage_by_user, usage_point, usage_request
from usagemeter_clickhouse import tables

_NOW = T0


def _mixed_request():
    request = usage_request(
        [
            usage_point("alice", 5.0, _NOW),
            usage_point("bob", math.nan, _NOW),
            usage_point("bob", math.inf, _NOW),
            usage_point("bob", -1.0, _NOW),
            usage_point(None, 4.0, _NOW),
            usage_point("carol", 2.0, _NOW, feature=""),
            usage_point("alice", 1.5, _NOW + 1),
        ]
    )
    gauge = Metric(name="temperature", gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=_NOW, as_double=20)]))
    request.resource_metrics[0].scope_metrics[0].metrics.append(gauge)
    return request


def _assert_partial(response: ExportMetricsServiceResponse, clickhouse) -> None:
    assert response.partial_success.rejected_data_points == 5
    message = response.partial_success.error_message
    for reason in ("must be finite", "must not be negative", "lacks attribute user.id", "lacks attribute feature.key"):
        assert reason in message
    assert usage_by_user(clickhouse) == {"alice": 6.5}
    assert count_rows(clickhouse, tables.METRICS_GAUGE) == 1


def test_http_partial_success_stores_the_valid_points(collector, clickhouse):
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=_mixed_request().SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    _assert_partial(ExportMetricsServiceResponse.FromString(response.content), clickhouse)


def test_http_json_partial_success_uses_json(collector, clickhouse):
    from google.protobuf import json_format

    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=json_format.MessageToJson(_mixed_request()),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedDataPoints"] == "5"
    _assert_partial(json_format.Parse(response.content, ExportMetricsServiceResponse()), clickhouse)


def test_grpc_partial_success_stores_the_valid_points(collector, clickhouse):
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        response = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(_mixed_request(), timeout=10)
    _assert_partial(response, clickhouse)


def test_non_monotonic_usage_is_rejected(collector, clickhouse):
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        response = stub.Export(usage_request([usage_point("alice", 5.0, _NOW)], monotonic=False), timeout=10)
    assert response.partial_success.rejected_data_points == 1
    assert "monotonic" in response.partial_success.error_message
    assert count_rows(clickhouse, tables.METRICS_SUM) == 0


def _span(trace_id: bytes, span_id: bytes, parent: bytes = b"") -> Span:
    span = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="s")
    span.start_time_unix_nano, span.end_time_unix_nano = _NOW, _NOW + 5
    return span


def test_spans_with_invalid_ids_are_rejected(collector, clickhouse):
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.extend(
        [
            _span(bytes(range(1, 17)), bytes(range(1, 9))),
            _span(b"\x01\x02\x03", bytes(range(1, 9))),
            _span(bytes(16), bytes(range(1, 9))),
            _span(bytes(range(1, 17)), b""),
            _span(bytes(range(1, 17)), bytes(range(2, 10)), parent=b"\x01"),
        ]
    )
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 4
    assert "trace_id" in answer.partial_success.error_message
    assert "parent_span_id" in answer.partial_success.error_message
    rows = clickhouse.query(f"SELECT TraceId, SpanId, Duration FROM {tables.TRACES}").result_rows
    assert rows == [(bytes(range(1, 17)).hex(), bytes(range(1, 9)).hex(), 5)]


def test_json_span_with_non_hex_id_is_rejected(collector, clickhouse):
    when = {"startTimeUnixNano": str(_NOW), "endTimeUnixNano": str(_NOW + 1)}
    valid = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "ok"} | when
    bad = {"traceId": "zz", "spanId": "0102030405060708", "name": "bad"} | when
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [valid, bad]}]}]}
    response = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces", json=body)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert clickhouse.query(f"SELECT SpanName FROM {tables.TRACES}").result_rows == [("ok",)]
