-- Trace id -> first and last span time, as the OpenTelemetry Collector's ClickHouse exporter
-- keeps it. Grafana's ClickHouse plugin, in OpenTelemetry trace mode, reads it to narrow a
-- trace-id lookup to that time window instead of scanning otel_traces (ordered by service).
-- One row per trace id and insert block: readers take min(Start) and max(End). On a cluster
-- each shard keeps the lookup of its own spans; the Distributed table reads them all.

CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts{{LOCAL}} {{ON_CLUSTER}} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {{REPLICATED}}MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
TTL toDateTime(Start) + INTERVAL {{RAW_RETENTION_DAYS}} DAY
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

{{DISTRIBUTED otel_traces_trace_id_ts BY cityHash64(TraceId)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv {{ON_CLUSTER}}
TO otel_traces_trace_id_ts{{LOCAL}} AS
SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces{{LOCAL}}
WHERE TraceId != ''
GROUP BY TraceId;

-- Spans stored before this migration; skipped once the lookup table holds anything.
INSERT INTO otel_traces_trace_id_ts{{LOCAL}}
SELECT TraceId, min(Timestamp), max(Timestamp)
FROM otel_traces{{LOCAL}}
WHERE TraceId != ''
  AND (SELECT count() FROM otel_traces_trace_id_ts{{LOCAL}}) = 0
GROUP BY TraceId;
