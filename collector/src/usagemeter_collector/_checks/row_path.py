"""The row path: ExportMetricsServiceRequest → rows of the raw metric tables.

Every data point is checked against the ``feature.usage`` rule (:mod:`usagemeter_collector._checks.rule`) as written,
and monotonic cumulative sums are converted into deltas on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    Metric,
    NumberDataPoint,
)

from usagemeter_clickhouse import tables
from usagemeter_collector import _schema
from usagemeter_collector._checks.attributes import attribute_map, text_bytes
from usagemeter_collector._checks.cumulative import CumulativeToDelta, SeriesLimitReached
from usagemeter_collector._checks.outcome import Decoded
from usagemeter_collector._checks.rule import PointRules, attributes_problem, exemplars_problem, value_problem
from usagemeter_collector._spool.records import Row

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_NO_EXEMPLARS: tuple[list[Any], ...] = ([], [], [], [], [])


class _Context:
    """What the point handlers of one metric share."""

    __slots__ = ("converter", "decoded", "head", "rules", "series")

    def __init__(
        self, decoded: Decoded, converter: CumulativeToDelta, head: Row, series: Hashable, rules: PointRules
    ) -> None:
        self.decoded = decoded
        self.converter = converter
        self.head = head
        self.series = series
        self.rules = rules

    def outside(self, start_ns: int, time_ns: int, exemplars: Sequence[Exemplar] = ()) -> bool:
        """Reject a point whose timestamps are out of the accepted window or whose exemplars cannot be stored."""
        problem = self.rules.window.problem(start_ns, time_ns) or exemplars_problem(exemplars)
        if problem is None:
            return False
        self.decoded.reject(problem)
        return True


def decode_metrics(request: ExportMetricsServiceRequest, converter: CumulativeToDelta, rules: PointRules) -> Decoded:
    """Rows for every storable data point of ``request``; points breaking ``rules`` are counted as rejected."""
    decoded = Decoded()
    for resource_metrics in request.resource_metrics:
        resource_attributes = attribute_map(resource_metrics.resource.attributes)
        service_name = resource_attributes.get("service.name", "")
        resource_key = tuple(sorted(resource_attributes.items()))
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_head = (
                resource_attributes,
                resource_metrics.schema_url,
                scope.name,
                scope.version,
                attribute_map(scope.attributes),
                scope.dropped_attributes_count,
                scope_metrics.schema_url,
                service_name,
            )
            for metric in scope_metrics.metrics:
                handler = _HANDLERS.get(metric.WhichOneof("data") or "")
                if handler is None:
                    continue
                head = (*scope_head, metric.name, metric.description, metric.unit)
                series = (resource_key, scope.name, scope.version, metric.name)
                handler(metric, _Context(decoded, converter, head, series, rules))
    return decoded


def _number(point: NumberDataPoint) -> float:
    if point.WhichOneof("value") == "as_int":
        return float(point.as_int)
    return point.as_double


def _exemplars(exemplars: Sequence[Exemplar]) -> tuple[list[Any], ...]:
    if not exemplars:
        return _NO_EXEMPLARS
    return (
        [attribute_map(e.filtered_attributes) for e in exemplars],
        [e.time_unix_nano for e in exemplars],
        [float(e.as_int) if e.WhichOneof("value") == "as_int" else e.as_double for e in exemplars],
        [e.span_id.hex() for e in exemplars],
        [e.trace_id.hex() for e in exemplars],
    )


def usage_problem(
    attributes: dict[str, str], value: float, monotonic: bool, temporality: int, rules: PointRules
) -> str | None:
    """Why a ``feature.usage`` point cannot be metered, or None when it can."""
    problem = value_problem(value, monotonic, temporality, rules.max_value)
    if problem is None:
        user = text_bytes(attributes.get(tables.USER_ATTRIBUTE, ""))
        feature = text_bytes(attributes.get(tables.FEATURE_ATTRIBUTE, ""))
        problem = attributes_problem(user, feature, rules.max_id_bytes)
    return problem


def _sum(metric: Metric, ctx: _Context) -> None:
    data = metric.sum
    temporality, monotonic = data.aggregation_temporality, data.is_monotonic
    is_usage = metric.name == tables.USAGE_METRIC
    to_delta = monotonic and temporality == _CUMULATIVE
    rows = ctx.decoded.rows[_schema.METRICS_SUM]
    for point in data.data_points:
        if ctx.outside(point.start_time_unix_nano, point.time_unix_nano, point.exemplars):
            continue
        attributes = attribute_map(point.attributes)
        value = _number(point)
        if is_usage and (problem := usage_problem(attributes, value, monotonic, temporality, ctx.rules)):
            ctx.decoded.reject(problem)
            continue
        start, stored_temporality = point.start_time_unix_nano, temporality
        if to_delta:
            key = (ctx.series, tuple(sorted(attributes.items())))
            try:
                delta = ctx.converter.convert(key, start, point.time_unix_nano, value, ctx.decoded.undo)
            except SeriesLimitReached as exc:
                ctx.decoded.reject(str(exc))
                continue
            if delta.value is None:
                ctx.decoded.duplicates += 1
                continue
            start, value, stored_temporality = delta.start_time, delta.value, _DELTA
        rows.append(
            (
                *ctx.head,
                attributes,
                start,
                point.time_unix_nano,
                value,
                point.flags,
                *_exemplars(point.exemplars),
                stored_temporality,
                monotonic,
            )
        )


def _gauge(metric: Metric, ctx: _Context) -> None:
    rows = ctx.decoded.rows[_schema.METRICS_GAUGE]
    for point in metric.gauge.data_points:
        if ctx.outside(point.start_time_unix_nano, point.time_unix_nano, point.exemplars):
            continue
        rows.append(
            (
                *ctx.head,
                attribute_map(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                _number(point),
                point.flags,
                *_exemplars(point.exemplars),
            )
        )


def _histogram(metric: Metric, ctx: _Context) -> None:
    data = metric.histogram
    rows = ctx.decoded.rows[_schema.METRICS_HISTOGRAM]
    for point in data.data_points:
        if ctx.outside(point.start_time_unix_nano, point.time_unix_nano, point.exemplars):
            continue
        rows.append(
            (
                *ctx.head,
                attribute_map(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                point.count,
                point.sum,
                list(point.bucket_counts),
                list(point.explicit_bounds),
                *_exemplars(point.exemplars),
                point.flags,
                point.min,
                point.max,
                data.aggregation_temporality,
            )
        )


def _exponential_histogram(metric: Metric, ctx: _Context) -> None:
    data = metric.exponential_histogram
    rows = ctx.decoded.rows[_schema.METRICS_EXPONENTIAL_HISTOGRAM]
    for point in data.data_points:
        if ctx.outside(point.start_time_unix_nano, point.time_unix_nano, point.exemplars):
            continue
        rows.append(
            (
                *ctx.head,
                attribute_map(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                point.count,
                point.sum,
                point.scale,
                point.zero_count,
                point.positive.offset,
                list(point.positive.bucket_counts),
                point.negative.offset,
                list(point.negative.bucket_counts),
                *_exemplars(point.exemplars),
                point.flags,
                point.min,
                point.max,
                data.aggregation_temporality,
            )
        )


def _summary(metric: Metric, ctx: _Context) -> None:
    rows = ctx.decoded.rows[_schema.METRICS_SUMMARY]
    for point in metric.summary.data_points:
        if ctx.outside(point.start_time_unix_nano, point.time_unix_nano):
            continue
        rows.append(
            (
                *ctx.head,
                attribute_map(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                point.count,
                point.sum,
                [q.quantile for q in point.quantile_values],
                [q.value for q in point.quantile_values],
                point.flags,
            )
        )


_HANDLERS: dict[str, Callable[[Metric, _Context], None]] = {
    "sum": _sum,
    "gauge": _gauge,
    "histogram": _histogram,
    "exponential_histogram": _exponential_histogram,
    "summary": _summary,
}
