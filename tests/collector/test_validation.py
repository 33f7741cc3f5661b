"""Invalid usage points and spans are rejected with OTLP partial success; the rest of the request is stored."""

from __future__ import annotations

import math
import time
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Gauge, Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.conftest import T0, count_rows, post_metrics, usage_by_user, usage_point, usage_request
from usagemeter_clickhouse import tables

_NOW = T0
_MINUTE_NS = 60 * 10**9
_HOUR_NS = 60 * _MINUTE_NS
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


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


def _post_traces(collector, request: ExportTraceServiceRequest) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )


def _two_spans() -> tuple[ExportTraceServiceRequest, Any]:
    """A traces request of two valid spans, and its list of spans."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.extend([_span(bytes(range(1, 17)), bytes(range(1, 9))), _span(bytes(range(2, 18)), bytes(range(2, 10)))])
    return request, spans


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
    response = _post_traces(collector, request)
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


def _send_protobuf(collector, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
    response = post_metrics(collector.http_port, request)
    assert response.status_code == 200, response.content
    return ExportMetricsServiceResponse.FromString(response.content)


def _send_json(collector, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=json_format.MessageToJson(request),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.content
    return json_format.Parse(response.content, ExportMetricsServiceResponse())


def _send_grpc(collector, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        return metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=30)


_SENDERS = {"http-protobuf": _send_protobuf, "http-json": _send_json, "grpc": _send_grpc}
_sender = pytest.mark.parametrize("send", _SENDERS.values(), ids=_SENDERS.keys())


def _int_point(user: str, value: int, time_ns: int) -> NumberDataPoint:
    point = usage_point(user, 0, time_ns)
    point.as_int = value
    return point


@_sender
def test_usage_values_above_the_maximum_are_refused_so_totals_stay_finite(collector, clickhouse, send):
    request = usage_request(
        [
            usage_point("alice", 1e308, _NOW),
            usage_point("alice", 1e308, _NOW + 1),
            usage_point("bob", 1e15, _NOW),
            usage_point("bob", 7, _NOW + 1),
            usage_point("carol", math.nextafter(1e15, math.inf), _NOW),
            _int_point("dave", 10**18, _NOW),
            _int_point("dave", 3, _NOW + 1),
            usage_point("erin", -2, _NOW),
        ]
    )
    partial = send(collector, request).partial_success
    assert partial.rejected_data_points == 5
    assert "feature.usage value must not exceed 1e+15 (4)" in partial.error_message
    assert "must not be negative (1)" in partial.error_message
    totals = usage_by_user(clickhouse)
    assert totals == {"bob": 1e15 + 7, "dave": 3.0}
    assert all(math.isfinite(total) for total in totals.values())


@pytest.mark.parametrize("protobuf_metrics", [True, False], ids=["checked in place", "row path"])
def test_cumulative_values_above_the_maximum_are_refused_and_the_series_goes_on(
    start_collector, clickhouse, protobuf_metrics
):
    collector = start_collector(protobuf_metrics=protobuf_metrics)
    start = _NOW - 100
    for offset, value in enumerate((10.0, 1e16, 25.0)):
        point = usage_point("alice", value, _NOW + offset, start_ns=start)
        response = _send_protobuf(collector, usage_request([point], temporality=_CUMULATIVE))
        refused = response.partial_success.rejected_data_points
        assert refused == (1 if value > 1e15 else 0)
    assert (
        "must not exceed 1e+15"
        in _send_protobuf(
            collector, usage_request([usage_point("bob", 2e15, _NOW, start_ns=start)], temporality=_CUMULATIVE)
        ).partial_success.error_message
    )
    assert usage_by_user(clickhouse) == {"alice": 25.0}


def test_the_maximum_point_value_is_configurable(start_collector, clickhouse):
    collector = start_collector(max_point_value=100)
    request = usage_request([usage_point("alice", 100, _NOW), usage_point("bob", 100.5, _NOW)])
    partial = _send_protobuf(collector, request).partial_success
    assert partial.rejected_data_points == 1
    assert "must not exceed 100 (1)" in partial.error_message
    assert usage_by_user(clickhouse) == {"alice": 100.0}


@_sender
def test_ids_longer_than_the_limit_are_refused_naming_the_attribute(collector, clickhouse, send):
    request = usage_request(
        [
            usage_point("a" * 256, 1, _NOW),
            usage_point("é" * 128, 2, _NOW),  # 256 bytes of UTF-8
            usage_point("b" * 257, 4, _NOW),
            usage_point("ü" * 129, 8, _NOW),  # 129 characters, 258 bytes
            usage_point("c" * 1_000_000, 16, _NOW),
            usage_point("dave", 32, _NOW, feature="f" * 257),
            usage_point("", 64, _NOW),
            usage_point("erin", 128, _NOW),
        ]
    )
    partial = send(collector, request).partial_success
    assert partial.rejected_data_points == 5
    message = partial.error_message
    assert "feature.usage attribute user.id is longer than 256 bytes (3)" in message
    assert "feature.usage attribute feature.key is longer than 256 bytes (1)" in message
    assert "lacks attribute user.id (1)" in message
    assert usage_by_user(clickhouse) == {"a" * 256: 1.0, "é" * 128: 2.0, "erin": 128.0}


def test_the_id_limit_is_configurable(start_collector, clickhouse):
    collector = start_collector(max_id_bytes=8)
    request = usage_request(
        [
            usage_point("user-123", 1, _NOW),
            usage_point("user-1234", 2, _NOW),
            usage_point("bob", 4, _NOW, feature="x" * 9),
        ]
    )
    partial = _send_protobuf(collector, request).partial_success
    assert partial.rejected_data_points == 2
    assert "user.id is longer than 8 bytes (1)" in partial.error_message
    assert "feature.key is longer than 8 bytes (1)" in partial.error_message
    assert usage_by_user(clickhouse) == {"user-123": 1.0}


@_sender
def test_points_beyond_the_allowed_clock_skew_are_refused(collector, clickhouse, send):
    now = time.time_ns()
    request = usage_request(
        [
            usage_point("alice", 1, now + 2 * _MINUTE_NS),
            usage_point("bob", 2, now + 10 * _MINUTE_NS),
            usage_point("bob", 4, now + 23 * 60 * _MINUTE_NS),
            usage_point("carol", 8, _NOW, start_ns=now + 10 * _MINUTE_NS),
            usage_point("dave", 16, _NOW),
        ]
    )
    partial = send(collector, request).partial_success
    assert partial.rejected_data_points == 3
    assert "timestamp too far in the future (3)" in partial.error_message
    assert usage_by_user(clickhouse) == {"alice": 1.0, "dave": 16.0}


def test_the_allowed_clock_skew_is_configurable(start_collector, clickhouse):
    collector = start_collector(max_future_seconds=3600)
    now = time.time_ns()
    request = usage_request([usage_point("alice", 1, now + 10 * _MINUTE_NS), usage_point("bob", 2, now + 2 * _HOUR_NS)])
    partial = _send_protobuf(collector, request).partial_success
    assert partial.rejected_data_points == 1
    assert usage_by_user(clickhouse) == {"alice": 1.0}


def test_spans_beyond_the_allowed_clock_skew_are_refused(collector, clickhouse):
    now = time.time_ns()
    request, spans = _two_spans()
    spans[1].start_time_unix_nano, spans[1].end_time_unix_nano = now + 10 * _MINUTE_NS, now + 11 * _MINUTE_NS
    response = _post_traces(collector, request)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "too far in the future" in answer.partial_success.error_message
    assert count_rows(clickhouse, tables.TRACES) == 1


@pytest.mark.parametrize("protobuf_metrics", [True, False], ids=["checked in place", "row path"])
def test_points_with_exemplars_later_than_storable_are_refused_and_nothing_is_set_aside(
    start_collector, clickhouse, protobuf_metrics
):
    collector = start_collector(protobuf_metrics=protobuf_metrics)
    late = usage_point("alice", 5, _NOW)
    late.exemplars.add(time_unix_nano=2**64 - 1, as_double=1)
    kept = usage_point("bob", 3, _NOW)
    kept.exemplars.add(time_unix_nano=_NOW, as_double=1)
    request = usage_request([late, kept])
    gauge = Metric(name="queue.depth")
    gauge.gauge.data_points.add(time_unix_nano=_NOW, as_double=1).exemplars.add(time_unix_nano=2**63, as_int=1)
    gauge.gauge.data_points.add(time_unix_nano=_NOW, as_double=2).exemplars.add(time_unix_nano=_NOW, as_int=1)
    request.resource_metrics[0].scope_metrics[0].metrics.append(gauge)
    partial = _send_protobuf(collector, request).partial_success
    assert partial.rejected_data_points == 2
    assert partial.error_message == "exemplar timestamp out of range (2)"
    assert usage_by_user(clickhouse) == {"bob": 3.0}
    assert clickhouse.query(f"SELECT Value FROM {tables.METRICS_GAUGE}").result_rows == [(2.0,)]
    assert collector.telemetry.segments_quarantined == 0


def test_spans_with_events_later_than_storable_are_refused_and_nothing_is_set_aside(collector, clickhouse):
    request, spans = _two_spans()
    spans[0].events.add(time_unix_nano=_NOW + 1, name="kept")
    spans[1].events.add(time_unix_nano=2**64 - 1, name="late")
    response = _post_traces(collector, request)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message == "span event timestamp out of range (1)"
    assert clickhouse.query(f"SELECT Events.Name FROM {tables.TRACES}").result_rows == [(["kept"],)]
    assert collector.telemetry.segments_quarantined == 0
