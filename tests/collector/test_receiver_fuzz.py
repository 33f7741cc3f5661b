"""No mutation of a valid export, however hostile, gets a 5xx or an internal gRPC error, or stops the collector
from storing what it acknowledges.

Mutations of valid metrics and traces requests (bit flips, truncations, splices, inserted bytes, deep nesting,
extreme field values, values of the wrong type) are posted over real sockets to a running collector, as protobuf
and JSON, plain and gzip (one member or several), and the protobuf ones are also sent over gRPC. The examples are
derandomized, so every run replays the same ones; hostile inputs worth keeping go into tests/corpus/otlp/.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.conftest import T0, attrs, usage_by_user, usage_point, usage_request
from tests.collector.hostile import CORPUS, GRPC_METHODS, HTTP_PATHS, nested_any_value

_EXAMPLES = 300
_PB = "application/x-protobuf"
_RESPONSES = {"metrics": ExportMetricsServiceResponse, "traces": ExportTraceServiceResponse}
#: What a hostile body may get: a success (possibly partial), or a refusal of the body with its reason.
_HTTP_ANSWERS = {200, 400, 413, 415}
_GRPC_ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _metrics_seed(nested_attribute: bool) -> ExportMetricsServiceRequest:
    """Usage, cumulative, gauge and histogram points; a nested attribute sends the request down the row path."""
    request = usage_request([usage_point(f"user-{n}", n + 0.5, T0 + n) for n in range(3)])
    scope = request.resource_metrics[0].scope_metrics[0]
    running = Metric(name="feature.usage")
    running.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    running.sum.is_monotonic = True
    running.sum.data_points.append(usage_point("carol", 10, T0, start_ns=T0 - 100))
    gauge = Metric(name="queue.depth")
    gauge.gauge.data_points.add(time_unix_nano=T0, as_int=3).attributes.extend(attrs(queue="a", busy=True))
    histogram = Metric(name="latency")
    histogram.histogram.data_points.add(time_unix_nano=T0, count=2, sum=3.5, bucket_counts=[1, 1])
    histogram.histogram.data_points[0].explicit_bounds.append(1.0)
    histogram.histogram.data_points[0].exemplars.add(time_unix_nano=T0, as_double=1.5, span_id=b"\x01" * 8)
    scope.metrics.extend([running, gauge, histogram])
    if not nested_attribute:
        return request
    nested = AnyValue()
    nested.kvlist_value.values.add(key="k").value.array_value.values.add(int_value=1)
    request.resource_metrics[0].resource.attributes.append(KeyValue(key="nested", value=nested))
    return request


def _traces_seed() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.extend(attrs(service_name="fuzz"))
    span = Span(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="feature.use")
    span.start_time_unix_nano, span.end_time_unix_nano = T0, T0 + 10
    span.attributes.extend(attrs(user_id="alice", feature_key="chat", tokens=12))
    span.events.add(time_unix_nano=T0 + 1, name="e").attributes.extend(attrs(n=1.5))
    span.links.add(trace_id=bytes(range(2, 18)), span_id=bytes(range(2, 10)))
    resource.scope_spans.add().spans.append(span)
    return request


#: Each seed by name, with its signal.
_SEEDS: dict[str, tuple[str, Message]] = {
    "metrics": ("metrics", _metrics_seed(nested_attribute=False)),
    "metrics on the row path": ("metrics", _metrics_seed(nested_attribute=True)),
    "traces": ("traces", _traces_seed()),
}
_CORPUS_BODIES = sorted(path.read_bytes() for path in CORPUS.glob("*.pb")) if CORPUS.is_dir() else []


_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids(node: Any) -> Any:
    """The protobuf JSON mapping writes ids as base64, OTLP JSON as hex."""
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex() if key in _ID_KEYS else _hex_ids(value) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


_JSON_SEEDS = {name: _hex_ids(json_format.MessageToDict(seed)) for name, (_, seed) in _SEEDS.items()}

_HUGE_NUMBERS = ["1e308", "-1e308", "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", str(2**64), "-0"]
_hostile_values = st.one_of(
    st.sampled_from(_HUGE_NUMBERS).map(lambda text: ("raw", text)),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: ("value", str(n) if n % 2 else n)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: ("value", x)),
    st.sampled_from(
        [None, True, False, "", "zz", "0" * 40, "\ud800", "a\x00b", [], {}, [1, "a"], {"a": {"b": []}}]
    ).map(lambda v: ("value", v)),
    st.text(max_size=20).map(lambda text: ("value", text)),
    st.integers(min_value=50, max_value=3_000).map(lambda depth: ("raw", "[" * depth + "]" * depth)),
    st.integers(min_value=50, max_value=3_000).map(lambda depth: ("raw", '{"a":' * depth + "0" + "}" * depth)),
)


def _slots(node: Any, into: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, in document order."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        into.append((node, key))
        _slots(value, into)
    return into


@st.composite
def _json_body(draw: st.DrawFn, name: str) -> bytes:
    extremes = draw(st.booleans())
    if extremes:
        # Extreme field values, in the OTLP JSON form of the request.
        seed = _SEEDS[name][1]
        mutated = type(seed).FromString(draw(_field_mutation(seed)))
        document = _hex_ids(json_format.MessageToDict(mutated))
    else:
        document = json.loads(json.dumps(_JSON_SEEDS[name]))
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(0 if extremes else 1, 3))):
        slots = _slots(document, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        kind, value = draw(_hostile_values)
        if kind == "raw":
            marker = f"RAW{len(raw)}"
            raw[marker] = value
            value = marker
        if draw(st.booleans()) or not isinstance(container, dict):
            container[key] = value
        else:
            del container[key]
    text = json.dumps(document)
    for marker, value in raw.items():
        text = text.replace(f'"{marker}"', value)
    body = text.encode()
    if draw(st.booleans()):
        body = draw(_byte_mutation(body))
    return body


def _flip(body: bytes, position: int, bit: int) -> bytes:
    if not body:
        return body
    position %= len(body)
    return body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]


@st.composite
def _byte_mutation(draw: st.DrawFn, body: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "deep", "varint"]))
    at = draw(st.integers(0, max(0, len(body))))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 3))):
            body = _flip(body, draw(st.integers(0, 1 << 20)), draw(st.integers(0, 7)))
        return body
    if kind == "truncate":
        return body[:at]
    if kind == "splice":
        other = draw(st.sampled_from([seed.SerializeToString() for _, seed in _SEEDS.values()] + _CORPUS_BODIES))
        start = draw(st.integers(0, len(other)))
        return body[:at] + other[start:]
    if kind == "insert":
        return body[:at] + draw(st.binary(min_size=1, max_size=32)) + body[at:]
    if kind == "deep":
        depth = draw(st.sampled_from([40, 49, 50, 99, 100, 101, 2_000]))
        return body[:at] + nested_any_value(depth, draw(st.sampled_from(["array", "kvlist"]))) + body[at:]
    # A field of every wire type holding its largest value.
    field_number = draw(st.integers(1, 20))
    largest = [b"\xff" * 9 + b"\x01", b"\xff" * 8, b"\xff\xff\xff\x0f" + b"\x7f" * 8, b"\xff" * 4]
    wire = draw(st.sampled_from([0, 1, 2, 5]))
    return body[:at] + bytes([field_number << 3 | wire]) + largest[[0, 1, 2, 5].index(wire)] + body[at:]


_F = FieldDescriptor
_EXTREMES: dict[int, list[Any]] = {
    _F.CPPTYPE_DOUBLE: [1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324, -0.0, 1e15, math.nextafter(1e15, 2e15)],
    _F.CPPTYPE_INT64: [-(2**63), 2**63 - 1, -1, 10**15 + 1],
    _F.CPPTYPE_UINT64: [0, 2**64 - 1, 2**63, time.time_ns() + 3600 * 10**9],
    _F.CPPTYPE_INT32: [-(2**31), 2**31 - 1, -1, 7],
    _F.CPPTYPE_UINT32: [0, 2**32 - 1],
    _F.CPPTYPE_ENUM: [-1, 7, 2**31 - 1],
    _F.CPPTYPE_STRING: ["", "x" * 300, "ü" * 200, "\x00", "feature.usage", "user.id"],
}
_BYTES = [b"", b"\x00" * 7, b"\xff" * 17, bytes(16)]


def _scalars(message: Message, into: list[tuple[Message, FieldDescriptor]]) -> list[tuple[Message, FieldDescriptor]]:
    """Every set singular scalar field of ``message`` and its sub-messages, with the message holding it."""
    for descriptor, value in message.ListFields():
        if descriptor.cpp_type == _F.CPPTYPE_MESSAGE:
            for child in value if descriptor.is_repeated else [value]:
                _scalars(child, into)
        elif not descriptor.is_repeated:
            into.append((message, descriptor))
    return into


@st.composite
def _field_mutation(draw: st.DrawFn, seed: Message) -> bytes:
    """The seed with a few of its fields set to the extremes of their types: it still parses."""
    message = type(seed).FromString(seed.SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        holder, descriptor = draw(st.sampled_from(_scalars(message, [])))
        if descriptor.cpp_type == _F.CPPTYPE_BOOL:
            value: Any = not getattr(holder, descriptor.name)
        elif descriptor.type == _F.TYPE_BYTES:
            value = draw(st.sampled_from(_BYTES))
        else:
            value = draw(
                st.sampled_from(
                    _EXTREMES[_F.CPPTYPE_DOUBLE if descriptor.cpp_type == _F.CPPTYPE_FLOAT else descriptor.cpp_type]
                )
            )
        setattr(holder, descriptor.name, value)
    return message.SerializeToString()


@st.composite
def _protobuf_body(draw: st.DrawFn, name: str) -> bytes:
    seed = _SEEDS[name][1]
    extremes = draw(st.booleans())
    body = draw(_field_mutation(seed)) if extremes else seed.SerializeToString()
    for _ in range(draw(st.integers(0 if extremes else 1, 2))):
        body = draw(_byte_mutation(body))
    return body


@st.composite
def _export(draw: st.DrawFn) -> tuple[str, str, int, bytes]:
    """(signal, media type, gzip members (0: none), body)."""
    name = draw(st.sampled_from(sorted(_SEEDS)))
    encoding = draw(st.sampled_from([_PB, "application/json"]))
    body = draw(_protobuf_body(name) if encoding == _PB else _json_body(name))
    return _SEEDS[name][0], encoding, draw(st.sampled_from([0, 0, 1, 3])), body


def _gzip(body: bytes, members: int) -> bytes:
    """``body`` as that many gzip members (0: as it is)."""
    if not members:
        return body
    step = -(-len(body) // members) or 1
    return b"".join(gzip.compress(body[start : start + step]) for start in range(0, max(len(body), 1), step))


def _check_http_answer(response: httpx.Response, signal: str, encoding: str) -> None:
    assert response.status_code in _HTTP_ANSWERS, (response.status_code, response.content[:300])
    if response.status_code != 200:
        message = status_pb2.Status()
        _decode(response.content, encoding, message)
        assert message.message
        return
    _decode(response.content, encoding, _RESPONSES[signal]())


def _decode(content: bytes, encoding: str, message: Any) -> None:
    if encoding == "application/json":
        json_format.Parse(content, message)
    else:
        message.ParseFromString(content)


def _check_grpc_answer(channel: grpc.Channel, signal: str, body: bytes) -> None:
    export: Callable[..., bytes] = channel.unary_unary(GRPC_METHODS[signal])
    try:
        export(body, timeout=30)
    except grpc.RpcError as failure:
        assert failure.code() in _GRPC_ANSWERS, (failure.code(), failure.details())


def test_no_mutation_of_a_valid_export_gets_a_server_error(collector, clickhouse) -> None:
    base = f"http://127.0.0.1:{collector.http_port}"
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel,
    ):

        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        )
        @given(_export())
        def post(export: tuple[str, str, int, bytes]) -> None:
            signal, encoding, members, body = export
            headers = {"Content-Type": encoding} | ({"Content-Encoding": "gzip"} if members else {})
            response = client.post(HTTP_PATHS[signal], content=_gzip(body, members), headers=headers)
            _check_http_answer(response, signal, encoding)
            if encoding == _PB:
                _check_grpc_answer(channel, signal, body)

        post()
        after = usage_request([usage_point("after-fuzz", 2.0, T0)])
        answer = client.post("/v1/metrics", content=after.SerializeToString(), headers={"Content-Type": _PB})
        assert answer.status_code == 200
    # Everything acknowledged was storable: nothing had to be set aside, and the writer is not stuck.
    assert usage_by_user(clickhouse, "chat").get("after-fuzz") == 2.0
    assert collector.telemetry.segments_quarantined == 0
    assert collector.telemetry.requests_received > 0
