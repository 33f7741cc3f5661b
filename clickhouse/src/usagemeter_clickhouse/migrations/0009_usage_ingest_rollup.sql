-- Usage per ingest minute: the same monotonic delta `feature.usage` points as the
-- other rollups, keyed by the minute they were inserted (not their event time) and
-- the event day they count for. A reader that has summed every ingest minute up to
-- some point can add later minutes to its totals, late-arriving points included,
-- without re-reading a period. Readers load their base from feature_usage_day on
-- start, so this table keeps only a few days and needs no backfill.

CREATE TABLE IF NOT EXISTS feature_usage_ingest{{LOCAL}} {{ON_CLUSTER}} (
    IngestMinute DateTime('UTC'),
    UserId String,
    FeatureKey LowCardinality(String),
    Day Date,
    Uses Float64
) ENGINE = {{REPLICATED}}SummingMergeTree(Uses)
PARTITION BY toYYYYMMDD(IngestMinute)
ORDER BY (IngestMinute, UserId, FeatureKey, Day)
TTL IngestMinute + INTERVAL 3 DAY
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED feature_usage_ingest BY cityHash64(UserId)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS feature_usage_ingest_mv {{ON_CLUSTER}}
TO feature_usage_ingest{{LOCAL}} AS
SELECT
    toStartOfMinute(now('UTC')) AS IngestMinute,
    Attributes['user.id'] AS UserId,
    Attributes['feature.key'] AS FeatureKey,
    toDate(TimeUnix) AS Day,
    sum(Value) AS Uses
FROM otel_metrics_sum{{LOCAL}}
WHERE MetricName = 'feature.usage' AND IsMonotonic AND AggregationTemporality = 1
GROUP BY UserId, FeatureKey, Day;
