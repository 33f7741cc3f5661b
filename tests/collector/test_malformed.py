"""Malformed exports get their specific status and reason, and the collector keeps serving."""

from __future__ import annotations

import gzip
import json

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.collector.conftest import T0, usage_by_user, usage_point, usage_request
from tests.collector.hostile import (
    json_nested_any_value,
    json_nested_arrays,
    json_nested_objects,
    nested_any_value,
    protobuf_with_nested_resource_attribute,
    usage_json,
)
from usagemeter_clickhouse import tables

_NOW = T0
_MAX = 64 * 1024
_PROTOBUF = {"Content-Type": "application/x-protobuf"}
_JSON = {"Content-Type": "application/json"}


def _valid_body(user: str) -> bytes:
    return usage_request([usage_point(user, 2.0, _NOW)]).SerializeToString()


_CASES = [
    pytest.param(_PROTOBUF, lambda: _valid_body("x")[:-3], 400, "malformed protobuf", id="truncated-protobuf"),
    pytest.param(_JSON, lambda: b'{"resourceMetrics": [', 400, "invalid JSON", id="invalid-json"),
    pytest.param(_JSON, lambda: b'{"resourceMetrics": 5}', 400, "invalid OTLP JSON", id="wrong-json-shape"),
    pytest.param(_JSON, lambda: b"[]", 400, "must be a JSON object", id="json-not-an-object"),
    pytest.param(
        _JSON,
        lambda: usage_json("x", "1").replace(b'"aggregationTemporality": 1', b'"aggregationTemporality": Infinity'),
        400,
        "cannot convert float infinity to integer",
        id="json-enum-infinity",
    ),
    pytest.param(
        _JSON, lambda: usage_json("x", "9" * 5_000), 400, "Exceeds the limit", id="json-number-of-5000-digits"
    ),
    pytest.param(
        _PROTOBUF | {"Content-Encoding": "gzip"}, lambda: b"not gzip at all", 400, "invalid gzip", id="bad-gzip"
    ),
    pytest.param(
        _PROTOBUF | {"Content-Encoding": "gzip"},
        lambda: gzip.compress(_valid_body("x"))[:-8],
        400,
        "truncated",
        id="truncated-gzip",
    ),
    pytest.param({"Content-Type": "text/plain"}, lambda: b"hello", 415, "Content-Type", id="unknown-content-type"),
    pytest.param(_PROTOBUF | {"Content-Encoding": "br"}, lambda: b"xx", 415, "Content-Encoding", id="unknown-coding"),
    pytest.param(_PROTOBUF, lambda: b"\x00" * (_MAX + 1), 413, "exceeds the limit", id="body-too-big"),
    pytest.param(
        _PROTOBUF | {"Content-Encoding": "gzip"},
        lambda: gzip.compress(b"\x00" * (_MAX * 4)),
        413,
        "decompressed body exceeds",
        id="gzip-bomb",
    ),
]


def _reason(response: httpx.Response) -> str:
    if response.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(response.content).message
    return json.loads(response.content)["message"]


@pytest.mark.parametrize(("headers", "make_body", "status", "reason"), _CASES)
def test_malformed_http_exports_get_specific_errors(start_collector, clickhouse, headers, make_body, status, reason):
    collector = start_collector(max_request_bytes=_MAX)
    base = f"http://127.0.0.1:{collector.http_port}"
    with httpx.Client(base_url=base) as client:
        response = client.post("/v1/metrics", content=make_body(), headers=headers)
        assert response.status_code == status
        assert reason in _reason(response)

        ok = client.post("/v1/metrics", content=_valid_body("after"), headers=_PROTOBUF)
        assert ok.status_code == 200
        assert ExportMetricsServiceResponse.FromString(ok.content) == ExportMetricsServiceResponse()
    assert usage_by_user(clickhouse) == {"after": 2.0}


def test_get_is_not_allowed(collector):
    for path in ("/v1/metrics", "/v1/traces"):
        assert httpx.get(f"http://127.0.0.1:{collector.http_port}{path}").status_code == 405


def test_malformed_grpc_export_is_invalid_argument(collector, clickhouse):
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        raw_export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.RpcError) as failure:
            raw_export(_valid_body("x")[:-3], timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed protobuf" in failure.value.details()

        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        stub.Export(usage_request([usage_point("after", 3.0, _NOW)]), timeout=10)
    assert usage_by_user(clickhouse) == {"after": 3.0}


def _deep_json(signal: str) -> list[tuple[bytes, str]]:
    key = f"resource{signal.capitalize()}"
    return [
        (json_nested_arrays(100_000, key), "nested too deeply"),
        (json_nested_objects(5_000, key), "nested too deeply"),
        (json_nested_any_value(2_000, signal), "nested too deeply"),
        # Shallow enough for the JSON reader, deeper than protobuf messages may nest.
        (json_nested_any_value(60, signal), "too deep"),
    ]


def test_deeply_nested_json_gets_400_with_a_reason(collector, clickhouse):
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.http_port}", timeout=30) as client:
        for signal in ("metrics", "spans"):
            path = "/v1/metrics" if signal == "metrics" else "/v1/traces"
            for body, reason in _deep_json(signal):
                for compressed in (False, True):
                    headers = _JSON | ({"Content-Encoding": "gzip"} if compressed else {})
                    response = client.post(path, content=gzip.compress(body) if compressed else body, headers=headers)
                    assert response.status_code == 400, (path, reason, compressed)
                    assert reason in _reason(response)
        assert client.post("/v1/metrics", content=_valid_body("after"), headers=_PROTOBUF).status_code == 200
    assert usage_by_user(clickhouse) == {"after": 2.0}


def test_deeply_nested_protobuf_any_values_get_400_and_invalid_argument(collector, clickhouse):
    bodies = [
        protobuf_with_nested_resource_attribute(depth, kind) for depth in (60, 100_000) for kind in ("array", "kvlist")
    ]
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.http_port}", timeout=30) as client:
        for path in ("/v1/metrics", "/v1/traces"):
            for body in bodies:
                response = client.post(path, content=body, headers=_PROTOBUF)
                assert response.status_code == 400
                assert "MaxDepth" in _reason(response)
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        for service in ("metrics.v1.MetricsService", "trace.v1.TraceService"):
            raw_export = channel.unary_unary(f"/opentelemetry.proto.collector.{service}/Export")
            for body in bodies:
                with pytest.raises(grpc.RpcError) as failure:
                    raw_export(body, timeout=10)
                assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        stub.Export(usage_request([usage_point("after", 3.0, _NOW)]), timeout=10)
    assert usage_by_user(clickhouse) == {"after": 3.0}


def test_nesting_within_the_limits_is_stored(collector, clickhouse):
    request = usage_request([usage_point("alice", 2.0, _NOW)])
    for key, kind in (("deep", "array"), ("map", "kvlist")):
        deep = AnyValue.FromString(nested_any_value(30, kind))
        request.resource_metrics[0].resource.attributes.append(KeyValue(key=key, value=deep))
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        response = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=10)
    assert response == ExportMetricsServiceResponse()
    body = json_nested_any_value(30, "spans")
    assert httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces", content=body, headers=_JSON).is_success
    assert usage_by_user(clickhouse) == {"alice": 2.0}
    stored = clickhouse.query(f"SELECT ResourceAttributes['deep'], ResourceAttributes['map'] FROM {tables.METRICS_SUM}")
    assert stored.result_rows == [("[" * 30 + '"x"' + "]" * 30, '{"k":' * 30 + '"x"' + "}" * 30)]


_NOT_UNICODE = [
    (b'{"resource\\ud800Metrics": []}', "a key is not valid Unicode"),
    (b'{"resourceMetrics": [{"\\udc00": 1}]}', "a key is not valid Unicode"),
    (b'{"resourceMetrics": "\\ud800"}', "which is \\ud800"),
    (usage_json("\\ud800", "1").replace(b"\\\\ud800", b"\\ud800"), "Unpaired surrogate"),
]


def test_json_strings_that_are_not_unicode_get_400_with_a_reason(collector, clickhouse):
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.http_port}", timeout=30) as client:
        for body, reason in _NOT_UNICODE:
            response = client.post("/v1/metrics", content=body, headers=_JSON)
            assert response.status_code == 400, body
            assert reason in _reason(response), body
        traces = client.post("/v1/traces", content=b'{"resourceSpans": [{"\\ud800": 1}]}', headers=_JSON)
        assert traces.status_code == 400
        assert client.post("/v1/metrics", content=_valid_body("after"), headers=_PROTOBUF).status_code == 200
    assert usage_by_user(clickhouse) == {"after": 2.0}


def test_a_gzip_body_of_several_members_is_read_whole(collector, clickhouse):
    body = usage_request([usage_point(f"user-{n}", 1.0 + n, _NOW) for n in range(4)]).SerializeToString()
    middle = len(body) // 2
    members = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    headers = _PROTOBUF | {"Content-Encoding": "gzip"}
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.http_port}", timeout=30) as client:
        assert client.post("/v1/metrics", content=members, headers=headers).status_code == 200
        trailing = client.post("/v1/metrics", content=gzip.compress(_valid_body("x")) + b"\0\0", headers=headers)
        assert trailing.status_code == 400
        assert "invalid gzip body" in _reason(trailing)
    assert usage_by_user(clickhouse) == {"user-0": 1.0, "user-1": 2.0, "user-2": 3.0, "user-3": 4.0}
