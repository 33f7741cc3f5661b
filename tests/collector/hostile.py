"""Hostile OTLP bodies: nesting far past any parser's limit, built without the libraries that would refuse them.

The metrics and traces requests share their outer field numbers (request.resource_* = 1, .resource = 1,
Resource.attributes = 1), so one body serves both signals.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.collector.conftest import T0

#: Hostile inputs kept as files, replayed on every run (see its README.md).
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "otlp"
#: Where each signal's exports go, over OTLP/HTTP and over gRPC.
HTTP_PATHS = {"metrics": "/v1/metrics", "traces": "/v1/traces"}
GRPC_METHODS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}

_ANY_ARRAY, _ANY_KVLIST, _LIST_VALUES, _KEY, _KV_VALUE = 5, 6, 1, 1, 2


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_any_value(depth: int, kind: str = "array") -> bytes:
    """An AnyValue holding an array (or a map) holding an AnyValue … ``depth`` times, around a string."""
    value = field(1, b"x")
    for _ in range(depth):
        if kind == "array":
            value = field(_ANY_ARRAY, field(_LIST_VALUES, value))
        else:
            value = field(_ANY_KVLIST, field(_LIST_VALUES, field(_KEY, b"k") + field(_KV_VALUE, value)))
    return value


def protobuf_with_nested_resource_attribute(depth: int, kind: str = "array") -> bytes:
    """A metrics or traces request whose one resource attribute is an AnyValue nested ``depth`` deep."""
    attribute = field(_KEY, b"deep") + field(_KV_VALUE, nested_any_value(depth, kind))
    return field(1, field(1, field(1, attribute)))


def json_nested_arrays(depth: int, key: str = "resourceMetrics") -> bytes:
    """A JSON object whose one value is ``depth`` nested arrays."""
    return b'{"%s":' % key.encode() + b"[" * depth + b"]" * depth + b"}"


def json_nested_objects(depth: int, key: str = "resourceSpans") -> bytes:
    """A JSON object whose one value is ``depth`` nested objects."""
    return b'{"%s":' % key.encode() + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def json_nested_any_value(depth: int, signal: str = "metrics") -> bytes:
    """An OTLP JSON request whose resource attribute is an AnyValue nested ``depth`` deep."""
    value = '{"stringValue":"x"}'
    for _ in range(depth):
        value = '{"arrayValue":{"values":[' + value + "]}}"
    resource = '{"resource":{"attributes":[{"key":"deep","value":' + value + "}]}}"
    return ('{"resource' + signal.capitalize() + '":[' + resource + "]}").encode()


def usage_json(user: str, value: str, time_ns: int = T0, feature: str = "chat") -> bytes:
    """An OTLP JSON metrics request with one delta ``feature.usage`` point whose value is the JSON text ``value``."""
    point = {
        "startTimeUnixNano": str(time_ns - 1),
        "timeUnixNano": str(time_ns),
        "asDouble": "VALUE",
        "attributes": [
            {"key": "user.id", "value": {"stringValue": user}},
            {"key": "feature.key", "value": {"stringValue": feature}},
        ],
    }
    metric = {"name": "feature.usage", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [point]}}
    document = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
    return json.dumps(document).replace('"VALUE"', value).encode()
