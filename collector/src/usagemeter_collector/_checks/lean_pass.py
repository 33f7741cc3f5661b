"""A faster form of the ``feature.usage`` rule (:mod:`usagemeter_collector._checks.rule`): the lean pass.

Pinned to the full checks by ``tests/collector/test_lean.py``:
``test_the_lean_pass_vouches_only_for_what_the_full_checks_keep_whole`` and
``test_the_lean_pass_holds_to_the_configured_value_and_id_limits``; and by
``tests/collector/test_point_rules.py::test_every_path_refuses_the_same_points_for_the_same_reason``
(it vouches for none of the refused points).

The common metering request is checked in one lean pass over its protobuf bytes.

Most requests hold only delta ``feature.usage`` sums whose points are all valid.
Such a request is read a second time with message types of the collector's own
that declare only what the checks look at (everything else stays unparsed). The
points are first kept as raw bytes and checked in bulk (``bulk_points``); when
the bulk check cannot tell, they are read as messages, with the attributes as a
map from key to the raw ``AnyValue`` bytes, and checked one by one. Either costs
a fraction of walking the full OTLP message point by point. Whatever this pass
cannot vouch for (another metric, a cumulative sum, a refused point, a value that
is not a non-empty plain string, exemplars, array or map attributes) is left to
the full checks, which decide exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from usagemeter_clickhouse import tables
from usagemeter_collector._checks.bulk_points import all_plain_and_valid, longest_plain_id
from usagemeter_collector._checks.rule import PointRules

_F = descriptor_pb2.FieldDescriptorProto
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_USER, _FEATURE = tables.USER_ATTRIBUTE, tables.FEATURE_ATTRIBUTE
_STRING_TAG = 0x0A  # AnyValue.string_value: field 1, length-delimited

# (name, number, type, repeated, message type, oneof)
_Field = tuple[str, int, int, bool, str | None, str | None]
_MESSAGES: dict[str, list[_Field]] = {
    # Present when the field occurs at all; singular message fields merge their occurrences.
    "Presence": [],
    "ValueKinds": [
        ("array_value", 5, _F.TYPE_MESSAGE, False, "Presence", None),
        ("kvlist_value", 6, _F.TYPE_MESSAGE, False, "Presence", None),
    ],
    # Every key/value of an attribute list merged into one: its value shows whether any was an array or a map.
    "MergedAttributes": [("value", 2, _F.TYPE_MESSAGE, False, "ValueKinds", None)],
    "Resource": [("attributes", 1, _F.TYPE_MESSAGE, False, "MergedAttributes", None)],
    "Scope": [("attributes", 3, _F.TYPE_MESSAGE, False, "MergedAttributes", None)],
    "Point": [
        ("start_time_unix_nano", 2, _F.TYPE_FIXED64, False, None, None),
        ("time_unix_nano", 3, _F.TYPE_FIXED64, False, None, None),
        ("as_double", 4, _F.TYPE_DOUBLE, False, None, "value"),
        ("as_int", 6, _F.TYPE_SFIXED64, False, None, "value"),
        ("exemplars", 5, _F.TYPE_MESSAGE, False, "Presence", None),
        ("attributes", 7, _F.TYPE_MESSAGE, True, "Point.AttributesEntry", None),
    ],
    "Sum": [
        ("data_points", 1, _F.TYPE_MESSAGE, True, "Point", None),
        ("aggregation_temporality", 2, _F.TYPE_INT32, False, None, None),
        ("is_monotonic", 3, _F.TYPE_BOOL, False, None, None),
    ],
    "Metric": [
        ("name", 1, _F.TYPE_STRING, False, None, None),
        ("gauge", 5, _F.TYPE_MESSAGE, False, "Presence", "data"),
        ("sum", 7, _F.TYPE_MESSAGE, False, "Sum", "data"),
        ("histogram", 9, _F.TYPE_MESSAGE, False, "Presence", "data"),
        ("exponential_histogram", 10, _F.TYPE_MESSAGE, False, "Presence", "data"),
        ("summary", 11, _F.TYPE_MESSAGE, False, "Presence", "data"),
    ],
    "ScopeMetrics": [
        ("scope", 1, _F.TYPE_MESSAGE, False, "Scope", None),
        ("metrics", 2, _F.TYPE_MESSAGE, True, "Metric", None),
    ],
    "ResourceMetrics": [
        ("resource", 1, _F.TYPE_MESSAGE, False, "Resource", None),
        ("scope_metrics", 2, _F.TYPE_MESSAGE, True, "ScopeMetrics", None),
    ],
    "Request": [("resource_metrics", 1, _F.TYPE_MESSAGE, True, "ResourceMetrics", None)],
}


#: The same types with each point left as its raw bytes, for the bulk check.
_RAW_MESSAGES = _MESSAGES | {
    "Sum": [("data_points", 1, _F.TYPE_BYTES, True, None, None), *_MESSAGES["Sum"][1:]],
}


def _add_fields(message: descriptor_pb2.DescriptorProto, package: str, fields: list[_Field]) -> None:
    oneofs: dict[str, int] = {}
    for name, number, kind, repeated, type_name, oneof in fields:
        label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name is not None:
            field.type_name = f".{package}.{type_name}"
        if oneof is not None:
            if oneof not in oneofs:
                oneofs[oneof] = len(message.oneof_decl)
                message.oneof_decl.add(name=oneof)
            field.oneof_index = oneofs[oneof]


def _request_type(package: str, messages: dict[str, list[_Field]]) -> type[Message]:
    """Build lean message types in a descriptor pool of their own."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto3")
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        _add_fields(message, package, fields)
        if name == "Point":
            # The wire form of map<string, bytes> is that of repeated KeyValue with the value left encoded.
            entry = message.nested_type.add(name="AttributesEntry")
            _add_fields(entry, package, [("key", 1, _F.TYPE_STRING, False, None, None)])
            _add_fields(entry, package, [("value", 2, _F.TYPE_BYTES, False, None, None)])
            entry.options.map_entry = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Request"))


_Request = _request_type("usagemeter.lean", _MESSAGES)
_RawRequest = _request_type("usagemeter.lean_raw", _RAW_MESSAGES)


def valid_usage_points(body: bytes, rules: PointRules) -> int | None:
    """The number of points when ``body`` holds only delta ``feature.usage`` points valid under ``rules`` with
    plain attributes (it is then stored as it is); None when the full checks must decide."""
    in_bulk = _count(_RawRequest, body, lambda points: all_plain_and_valid(list(points), rules))
    return in_bulk if in_bulk is not None else _checked_point_by_point(body, rules)


def _checked_point_by_point(body: bytes, rules: PointRules) -> int | None:
    """``valid_usage_points`` with every point read as a message and checked on its own."""
    return _count(_Request, body, lambda points: _all_valid(points, rules))


def _count(message_type: type[Message], body: bytes, check: Callable[[Any], bool]) -> int | None:
    """The points of ``body`` read as ``message_type`` when every metric is a usage sum whose points pass
    ``check``, else None."""
    request = _parsed(message_type, body)
    if request is None:
        return None
    total = 0
    for points in _usage_sums(request):
        if points is None or not check(points):
            return None
        total += len(points)
    return total or None


def _parsed(message_type: type[Message], body: bytes) -> Any:
    request = message_type()
    try:
        request.ParseFromString(body)
    except DecodeError:
        return None
    return request


def _usage_sums(request: Any) -> Iterator[Any]:
    """The points of each metric, or None for a metric (or attributes) the lean pass cannot vouch for."""
    for resource_metrics in request.resource_metrics:
        if _nested(resource_metrics.resource.attributes):
            yield None
            return
        for scope_metrics in resource_metrics.scope_metrics:
            if _nested(scope_metrics.scope.attributes):
                yield None
                return
            for metric in scope_metrics.metrics:
                yield _usage_points(metric)


def _nested(attributes: Any) -> bool:
    kinds = attributes.value
    return bool(kinds.HasField("array_value") or kinds.HasField("kvlist_value"))


def _usage_points(metric: Any) -> Any:
    if metric.name != tables.USAGE_METRIC or metric.WhichOneof("data") != "sum":
        return None
    data = metric.sum
    if not data.is_monotonic or data.aggregation_temporality != _DELTA:
        return None
    return data.data_points


def _all_valid(points: Any, rules: PointRules) -> bool:
    """Whether every point is in the window, has a non-negative value up to the maximum, no exemplars and
    exactly ``user.id`` and ``feature.key`` as non-empty plain strings within the id length limit (the hot
    loop of metering)."""
    (earliest, latest), max_value, max_id_bytes = rules
    max_id = longest_plain_id(max_id_bytes)
    for point in points:
        attributes = point.attributes
        if len(attributes) != 2:
            return False
        # Indexing adds a missing key with an empty value, which fails the checks below as it should.
        user = attributes[_USER]
        feature = attributes[_FEATURE]
        # A plain non-empty string is the string_value field alone, its length in one byte and within the limit.
        if not (
            earliest <= point.time_unix_nano <= latest
            and point.start_time_unix_nano <= latest
            and 0 <= (point.as_int or point.as_double) <= max_value
            and len(user) > 2
            and user[0] == _STRING_TAG
            and user[1] == len(user) - 2 <= max_id
            and len(feature) > 2
            and feature[0] == _STRING_TAG
            and feature[1] == len(feature) - 2 <= max_id
            and not point.HasField("exemplars")
        ):
            return False
    return True
