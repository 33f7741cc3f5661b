"""Names of the tables other components read and write.

Raw tables keep the OpenTelemetry Collector ClickHouse exporter's names.
"""

from __future__ import annotations

METRICS_SUM = "otel_metrics_sum"
METRICS_GAUGE = "otel_metrics_gauge"
METRICS_HISTOGRAM = "otel_metrics_histogram"
METRICS_EXPONENTIAL_HISTOGRAM = "otel_metrics_exponential_histogram"
METRICS_SUMMARY = "otel_metrics_summary"
TRACES = "otel_traces"

USAGE_MINUTE = "feature_usage_minute"
USAGE_DAY = "feature_usage_day"

SCHEMA_MIGRATIONS = "usagemeter_schema_migrations"

#: The metric name and data point attributes that make a point metered usage.
USAGE_METRIC = "feature.usage"
USER_ATTRIBUTE = "user.id"
FEATURE_ATTRIBUTE = "feature.key"

#: Tables whose TTL follows the raw retention setting, with their TTL column expression.
RAW_TTL = {
    METRICS_SUM: "toDateTime(TimeUnix)",
    METRICS_GAUGE: "toDateTime(TimeUnix)",
    METRICS_HISTOGRAM: "toDateTime(TimeUnix)",
    METRICS_EXPONENTIAL_HISTOGRAM: "toDateTime(TimeUnix)",
    METRICS_SUMMARY: "toDateTime(TimeUnix)",
    TRACES: "toDateTime(Timestamp)",
}
#: Rollup tables whose TTL follows the rollup retention setting.
ROLLUP_TTL = {
    USAGE_MINUTE: "Minute",
    USAGE_DAY: "Day",
}
