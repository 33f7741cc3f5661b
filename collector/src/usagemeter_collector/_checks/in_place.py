"""A faster form of the ``feature.usage`` rule (:mod:`usagemeter_collector._checks.rule`): requests checked in place.

Pinned to the row path by ``tests/collector/test_point_rules.py::
test_every_path_refuses_the_same_points_for_the_same_reason`` (the same points refused for the same
reasons) and ``tests/collector/test_protobuf_path.py::test_protobuf_and_row_paths_store_identical_rows``
(the same rows stored).

The request is kept as protobuf, for ClickHouse to decode (the protobuf path). Only what metering
needs is looked at per point: the rule's time window for every point and, for ``feature.usage``, its
value, sum shape and ids; the hot loop restates those limits inline and asks the rule's own functions
for the reason of a point it refuses.

Rejected and duplicate points are removed from the message and monotonic
cumulative sums are turned into deltas inside it (values, start times,
temporality). A request nothing changed keeps its original bytes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from usagemeter_clickhouse import tables
from usagemeter_collector._checks.attributes import attribute_map, rendered_bytes
from usagemeter_collector._checks.cumulative import CumulativeToDelta, SeriesLimitReached
from usagemeter_collector._checks.outcome import Decoded
from usagemeter_collector._checks.rule import PointRules, attributes_problem, exemplars_problem, value_problem

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
#: AnyValue kinds ClickHouse's reading of the request does not render; such requests take the row path.
_NESTED = frozenset(("array_value", "kvlist_value"))
_USER, _FEATURE = tables.USER_ATTRIBUTE, tables.FEATURE_ATTRIBUTE
_IDS = frozenset((_USER, _FEATURE))


class _RowPathNeeded(Exception):
    """The request holds attribute values only the row path renders."""


@dataclass
class _Edits:
    """Changes to the message, applied only once the whole request is known to stay on this path."""

    removals: list[tuple[Any, list[int]]] = field(default_factory=list)
    conversions: list[tuple[Any, int, float]] = field(default_factory=list)
    to_delta: list[Any] = field(default_factory=list)

    def remove(self, points: Any, indexes: list[int]) -> int:
        if indexes:
            self.removals.append((points, indexes))
        return len(points) - len(indexes)

    def apply(self) -> bool:
        """Make the changes; True when there were any."""
        for point, start_time, value in self.conversions:
            point.start_time_unix_nano = start_time
            point.as_double = value
        for data in self.to_delta:
            data.aggregation_temporality = _DELTA
        for points, indexes in self.removals:
            for index in reversed(indexes):
                del points[index]
        return bool(self.removals or self.conversions or self.to_delta)


@dataclass
class Screened:
    """A checked request: its (possibly rewritten) bytes, the metric kinds it holds and its point count."""

    decoded: Decoded
    body: bytes = b""
    kinds: tuple[str, ...] = ()
    points: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def screen_metrics(
    request: ExportMetricsServiceRequest, body: bytes | None, converter: CumulativeToDelta, rules: PointRules
) -> Screened | None:
    """Check and convert ``request`` in place; None when it must take the row path (nothing is kept then)."""
    screened = Screened(Decoded())
    edits = _Edits()
    try:
        _screen(request, converter, rules, screened, edits)
    except _RowPathNeeded:
        converter.rollback(screened.decoded.undo)
        return None
    changed = edits.apply()
    screened.kinds = tuple(kind for kind, count in screened.counts.items() if count)
    screened.points = sum(screened.counts.values())
    screened.body = request.SerializeToString() if changed or body is None else body
    return screened


def _screen(
    request: ExportMetricsServiceRequest,
    converter: CumulativeToDelta,
    rules: PointRules,
    screened: Screened,
    edits: _Edits,
) -> None:
    for resource_metrics in request.resource_metrics:
        _require_plain(resource_metrics.resource.attributes)
        resource_key: tuple[Any, ...] | None = None
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            _require_plain(scope.attributes)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                if kind == "sum" and metric.sum.is_monotonic and metric.sum.aggregation_temporality == _CUMULATIVE:
                    if resource_key is None:
                        resource_key = tuple(sorted(attribute_map(resource_metrics.resource.attributes).items()))
                    series = (resource_key, scope.name, scope.version, metric.name)
                    kept = _to_delta(metric, series, converter, rules, screened.decoded, edits)
                else:
                    kept = _check(metric, kind, rules, screened.decoded, edits)
                screened.counts[kind] = screened.counts.get(kind, 0) + kept


def _require_plain(attributes: Iterable[KeyValue]) -> None:
    for kv in attributes:
        if kv.value.WhichOneof("value") in _NESTED:
            raise _RowPathNeeded


def _exemplars_plain(point: Any) -> None:
    for exemplar in point.exemplars:
        _require_plain(exemplar.filtered_attributes)


def _id_lengths(point: Any) -> tuple[int, int]:
    """The rendered lengths in bytes of ``user.id`` and ``feature.key``, 0 when missing or empty (the last of
    repeated keys counts)."""
    user = feature = 0
    for kv in point.attributes:
        value = kv.value
        text = value.string_value
        if not text and value.WhichOneof("value") in _NESTED:
            raise _RowPathNeeded
        key = kv.key
        if key in _IDS:
            # A plain ASCII string, the common case, is measured inline: this is the hot loop's cost per id.
            size = len(text) if text and text.isascii() else rendered_bytes(value)
            if key == _USER:
                user = size
            else:
                feature = size
    return user, feature


def _point_problem(point: Any, usage: tuple[bool, int] | None, rules: PointRules) -> str | None:
    """Why ``point`` is refused; ``usage`` is (monotonic, temporality) for ``feature.usage`` points."""
    time_ns, window = point.time_unix_nano, rules.window
    if time_ns < window.earliest or time_ns > window.latest or point.start_time_unix_nano > window.latest:
        return window.problem(point.start_time_unix_nano, time_ns)
    # Summary points carry no exemplars.
    exemplars = getattr(point, "exemplars", ())
    if exemplars:
        _exemplars_plain(point)
        if problem := exemplars_problem(exemplars):
            return problem
    if usage is None:
        _require_plain(point.attributes)
        return None
    value = float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
    problem = value_problem(value, usage[0], usage[1], rules.max_value)
    if problem is None:
        problem = attributes_problem(*_id_lengths(point), rules.max_id_bytes)
    return problem


def _check(metric: Metric, kind: str, rules: PointRules, decoded: Decoded, edits: _Edits) -> int:
    """Refuse the invalid points of a metric that needs no conversion; the number of points kept."""
    data = getattr(metric, kind)
    if kind == "sum" and metric.name == tables.USAGE_METRIC:
        refused = _check_usage(data, rules, decoded)
    else:
        refused = _refuse_each(data.data_points, None, rules, decoded)
    return edits.remove(data.data_points, refused)


def _check_usage(data: Any, rules: PointRules, decoded: Decoded) -> list[int]:
    """Indexes of the refused points of a ``feature.usage`` sum (the hot loop of metering)."""
    shape = (data.is_monotonic, data.aggregation_temporality)
    (earliest, latest), max_value, max_id = rules
    if value_problem(0.0, *shape, max_value) is not None:
        return _refuse_each(data.data_points, shape, rules, decoded)
    refused = []
    for index, point in enumerate(data.data_points):
        time_ns = point.time_unix_nano
        value = float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
        user, feature = _id_lengths(point)
        if (
            time_ns < earliest
            or time_ns > latest
            or point.start_time_unix_nano > latest
            or not 0 <= value <= max_value
            or point.exemplars
            or not 0 < user <= max_id
            or not 0 < feature <= max_id
        ):
            problem = _point_problem(point, shape, rules)
            if problem is not None:
                decoded.reject(problem)
                refused.append(index)
    return refused


def _refuse_each(points: Any, shape: tuple[bool, int] | None, rules: PointRules, decoded: Decoded) -> list[int]:
    refused = []
    for index, point in enumerate(points):
        problem = _point_problem(point, shape, rules)
        if problem is not None:
            decoded.reject(problem)
            refused.append(index)
    return refused


def _to_delta(
    metric: Metric, series: Hashable, converter: CumulativeToDelta, rules: PointRules, decoded: Decoded, edits: _Edits
) -> int:
    """Check a monotonic cumulative sum and turn its points into deltas; the number of points kept."""
    data = metric.sum
    usage = (True, _CUMULATIVE) if metric.name == tables.USAGE_METRIC else None
    removed = []
    for index, point in enumerate(data.data_points):
        problem = _point_problem(point, usage, rules)
        if problem is not None:
            decoded.reject(problem)
            removed.append(index)
            continue
        value = float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
        key = (series, tuple(sorted(attribute_map(point.attributes).items())))
        try:
            delta = converter.convert(key, point.start_time_unix_nano, point.time_unix_nano, value, decoded.undo)
        except SeriesLimitReached as exc:
            decoded.reject(str(exc))
            removed.append(index)
            continue
        if delta.value is None:
            decoded.duplicates += 1
            removed.append(index)
            continue
        edits.conversions.append((point, delta.start_time, delta.value))
    edits.to_delta.append(data)
    return edits.remove(data.data_points, removed)
