"""Raw tables the collector writes and the column order of the rows it builds.

Names and columns follow the OpenTelemetry Collector's ClickHouse exporter.
Nested columns are written as their flattened arrays (``Exemplars.Value`` …).
"""

from __future__ import annotations

from usagemeter_clickhouse import tables

METRICS_SUM = tables.METRICS_SUM
METRICS_GAUGE = tables.METRICS_GAUGE
METRICS_HISTOGRAM = tables.METRICS_HISTOGRAM
METRICS_EXPONENTIAL_HISTOGRAM = tables.METRICS_EXPONENTIAL_HISTOGRAM
METRICS_SUMMARY = tables.METRICS_SUMMARY
TRACES = tables.TRACES

#: Columns every metric row starts with, filled once per metric.
METRIC_HEAD = (
    "ResourceAttributes",
    "ResourceSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "ScopeDroppedAttrCount",
    "ScopeSchemaUrl",
    "ServiceName",
    "MetricName",
    "MetricDescription",
    "MetricUnit",
)
POINT_HEAD = ("Attributes", "StartTimeUnix", "TimeUnix")
EXEMPLARS = (
    "Exemplars.FilteredAttributes",
    "Exemplars.TimeUnix",
    "Exemplars.Value",
    "Exemplars.SpanId",
    "Exemplars.TraceId",
)

COLUMNS: dict[str, tuple[str, ...]] = {
    METRICS_SUM: (
        *METRIC_HEAD,
        *POINT_HEAD,
        "Value",
        "Flags",
        *EXEMPLARS,
        "AggregationTemporality",
        "IsMonotonic",
    ),
    METRICS_GAUGE: (*METRIC_HEAD, *POINT_HEAD, "Value", "Flags", *EXEMPLARS),
    METRICS_HISTOGRAM: (
        *METRIC_HEAD,
        *POINT_HEAD,
        "Count",
        "Sum",
        "BucketCounts",
        "ExplicitBounds",
        *EXEMPLARS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    METRICS_EXPONENTIAL_HISTOGRAM: (
        *METRIC_HEAD,
        *POINT_HEAD,
        "Count",
        "Sum",
        "Scale",
        "ZeroCount",
        "PositiveOffset",
        "PositiveBucketCounts",
        "NegativeOffset",
        "NegativeBucketCounts",
        *EXEMPLARS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    METRICS_SUMMARY: (
        *METRIC_HEAD,
        *POINT_HEAD,
        "Count",
        "Sum",
        "ValueAtQuantiles.Quantile",
        "ValueAtQuantiles.Value",
        "Flags",
    ),
    TRACES: (
        "Timestamp",
        "TraceId",
        "SpanId",
        "ParentSpanId",
        "TraceState",
        "SpanName",
        "SpanKind",
        "ServiceName",
        "ResourceAttributes",
        "ScopeName",
        "ScopeVersion",
        "SpanAttributes",
        "Duration",
        "StatusCode",
        "StatusMessage",
        "Events.Timestamp",
        "Events.Name",
        "Events.Attributes",
        "Links.TraceId",
        "Links.SpanId",
        "Links.TraceState",
        "Links.Attributes",
    ),
}

#: Insert order of one flush: the usage table last, so a request that failed on
#: another table never has its usage stored (its retry would count it twice).
INSERT_ORDER = (
    TRACES,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
    METRICS_EXPONENTIAL_HISTOGRAM,
    METRICS_SUMMARY,
    METRICS_SUM,
)
