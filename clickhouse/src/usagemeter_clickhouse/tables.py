"""Names of the tables other components read and write.

Raw tables keep the OpenTelemetry Collector ClickHouse exporter's names. The telemetry
contract's metric and attribute names are kept here and in the instrumentation's ``_names`` on
purpose (the instrumentation depends on nothing of ours); tests/test_contract_names.py holds
them equal.
"""

from __future__ import annotations

METRICS_SUM = "otel_metrics_sum"
METRICS_GAUGE = "otel_metrics_gauge"
METRICS_HISTOGRAM = "otel_metrics_histogram"
METRICS_EXPONENTIAL_HISTOGRAM = "otel_metrics_exponential_histogram"
METRICS_SUMMARY = "otel_metrics_summary"
TRACES = "otel_traces"
#: Trace id -> first and last span time (the exporter's lookup table Grafana's trace view reads).
TRACE_ID_TS = "otel_traces_trace_id_ts"

#: Usage rollups: exact quantities (``Quantity Decimal128(6)``) per user, feature and dimension
#: (``DimensionKey = ''`` rows are the feature totals), per event minute, day and month.
USAGE_MINUTE = "usage_minute"
USAGE_DAY = "usage_day"
#: Kept for good: lifetime totals.
USAGE_MONTH = "usage_month"
#: Usage per ingest minute and event minute (kept 32 days), for incremental readers.
USAGE_INGEST = "usage_ingest"
#: The attributes usage may be sliced by (host-local; the rollup views read it).
USAGE_DIMENSIONS = "usage_dimensions"
#: Tables every host of a cluster keeps of its own, with the same rows (neither sharded nor replicated).
HOST_TABLES = (USAGE_DIMENSIONS,)
#: Corrections recorded by admins (signed quantities); views add them to every usage rollup.
USAGE_CORRECTIONS = "usage_corrections"
#: Grants of extra allowance (ReplacingMergeTree; read the newest Version per grant).
USAGE_GRANTS = "usage_grants"
#: The ServiceName of rollup rows that come from corrections.
CORRECTION_SERVICE = "usagemeter.correction"

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
    TRACE_ID_TS: "toDateTime(Start)",
}

#: Plans and user -> plan assignments (ReplacingMergeTree; read the newest Version per key).
PLANS = "plans"
PLAN_ASSIGNMENTS = "plan_assignments"
#: Conversions per day, name and service.
CONVERSIONS_DAY = "conversions_day"

#: Rollup tables whose TTL follows the rollup retention setting.
ROLLUP_TTL = {
    USAGE_MINUTE: "Minute",
    USAGE_DAY: "Day",
    CONVERSIONS_DAY: "Day",
}

#: Metric names of the telemetry contract the API reads.
CONVERSION_METRIC = "conversion.count"
CONVERSION_ATTRIBUTE = "conversion.name"
WORKER_HEARTBEAT_METRIC = "worker.heartbeat"
WORKER_QUEUE_DEPTH_METRIC = "worker.queue.depth"
WORKER_JOBS_METRIC = "worker.jobs"
WORKER_ATTRIBUTE = "worker.id"
QUEUE_ATTRIBUTE = "messaging.destination.name"
MESSAGING_SYSTEM_ATTRIBUTE = "messaging.system"
JOB_STATUS_ATTRIBUTE = "job.status"

#: Spans of tracked uses (sampled) and the metadata attributes the API sums.
FEATURE_USE_SPAN = "feature.use"
PROMPT_TOKENS_ATTRIBUTE = "prompt_tokens"
COMPLETION_TOKENS_ATTRIBUTE = "completion_tokens"

#: Threshold webhooks: registered endpoints, the events due (the outbox), each event's delivery to
#: each endpoint, every attempt, and the API replicas alive (ReplacingMergeTree but the attempts).
WEBHOOK_ENDPOINTS = "webhook_endpoints"
WEBHOOK_EVENTS = "webhook_events"
WEBHOOK_DELIVERIES = "webhook_deliveries"
WEBHOOK_ATTEMPTS = "webhook_attempts"
API_REPLICAS = "api_replicas"
