"""Raw OTLP rows as the collector stores them, inserted with integer nanosecond timestamps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from usagemeter_clickhouse import Client, tables

DELTA = 1
CUMULATIVE = 2
_MINUTE_NS = 60_000_000_000
_SUM_COLUMNS = [
    "ServiceName",
    "MetricName",
    "Attributes",
    "StartTimeUnix",
    "TimeUnix",
    "Value",
    "AggregationTemporality",
    "IsMonotonic",
]
_GAUGE_COLUMNS = ["ServiceName", "MetricName", "Attributes", "StartTimeUnix", "TimeUnix", "Value"]
_HISTOGRAM_COLUMNS = [
    "ServiceName",
    "MetricName",
    "Attributes",
    "StartTimeUnix",
    "TimeUnix",
    "Count",
    "Sum",
    "BucketCounts",
    "ExplicitBounds",
    "AggregationTemporality",
]


def ns(moment: datetime) -> int:
    """Whole seconds of ``moment`` in nanoseconds."""
    return int(moment.timestamp()) * 1_000_000_000


def moments_today(now: datetime, count: int) -> list[datetime]:
    """``count`` moments from today's midnight or 90 minutes ago, whichever is later, up to before ``now``.

    They lie in the current UTC day, ISO week and month, and inside a two-hour time range.
    """
    midnight = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    anchor = max(midnight, now - timedelta(minutes=90))
    return [anchor + (now - anchor) * step / count for step in range(count)]


@dataclass(frozen=True)
class UsagePoint:
    service: str
    feature: str
    user: str
    time_ns: int
    value: float
    #: The allow-listed dimension attribute the point carries.
    model: str = "gpt-4o-mini"


@dataclass(frozen=True)
class MetricPoint:
    """One sum or gauge data point."""

    service: str
    metric: str
    attributes: Mapping[str, str]
    time_ns: int
    value: float
    temporality: int = DELTA


@dataclass(frozen=True)
class HistogramPoint:
    service: str
    metric: str
    attributes: Mapping[str, str]
    time_ns: int
    bucket_counts: tuple[int, ...]
    bounds: tuple[float, ...]
    total: float
    temporality: int = DELTA
    count: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", sum(self.bucket_counts))


def usage_as_metric(point: UsagePoint) -> MetricPoint:
    attributes = {tables.USER_ATTRIBUTE: point.user, tables.FEATURE_ATTRIBUTE: point.feature, "model": point.model}
    return MetricPoint(point.service, tables.USAGE_METRIC, attributes, point.time_ns, point.value)


def insert_sums(client: Client, points: Iterable[MetricPoint]) -> None:
    rows = [
        [p.service, p.metric, dict(p.attributes), p.time_ns - _MINUTE_NS, p.time_ns, p.value, p.temporality, True]
        for p in points
    ]
    client.insert(tables.METRICS_SUM, rows, column_names=_SUM_COLUMNS)


def insert_gauges(client: Client, points: Iterable[MetricPoint]) -> None:
    rows = [[p.service, p.metric, dict(p.attributes), p.time_ns, p.time_ns, p.value] for p in points]
    client.insert(tables.METRICS_GAUGE, rows, column_names=_GAUGE_COLUMNS)


def insert_histograms(client: Client, points: Iterable[HistogramPoint]) -> None:
    rows = [
        [
            *(p.service, p.metric, dict(p.attributes), p.time_ns - _MINUTE_NS, p.time_ns),
            *(p.count, p.total, list(p.bucket_counts), list(p.bounds), p.temporality),
        ]
        for p in points
    ]
    client.insert(tables.METRICS_HISTOGRAM, rows, column_names=_HISTOGRAM_COLUMNS)
