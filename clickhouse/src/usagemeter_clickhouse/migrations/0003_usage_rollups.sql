-- Per-user, per-feature usage rollups. They read only monotonic delta points of
-- `feature.usage`: the collector turns cumulative senders into deltas before
-- insert, so every point here is an increment and a plain sum is exact.

CREATE TABLE IF NOT EXISTS feature_usage_minute{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    FeatureKey LowCardinality(String),
    ServiceName LowCardinality(String),
    Minute DateTime('UTC'),
    Uses Float64
) ENGINE = {{REPLICATED}}SummingMergeTree(Uses)
PARTITION BY toYYYYMM(Minute)
ORDER BY (UserId, FeatureKey, Minute, ServiceName)
TTL Minute + INTERVAL {{ROLLUP_RETENTION_DAYS}} DAY;

{{DISTRIBUTED feature_usage_minute BY cityHash64(UserId)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS feature_usage_minute_mv {{ON_CLUSTER}}
TO feature_usage_minute{{LOCAL}} AS
SELECT
    Attributes['user.id'] AS UserId,
    Attributes['feature.key'] AS FeatureKey,
    ServiceName,
    toStartOfMinute(TimeUnix) AS Minute,
    sum(Value) AS Uses
FROM otel_metrics_sum{{LOCAL}}
WHERE MetricName = 'feature.usage' AND IsMonotonic AND AggregationTemporality = 1
GROUP BY UserId, FeatureKey, ServiceName, Minute;

CREATE TABLE IF NOT EXISTS feature_usage_day{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    FeatureKey LowCardinality(String),
    ServiceName LowCardinality(String),
    Day Date,
    Uses Float64
) ENGINE = {{REPLICATED}}SummingMergeTree(Uses)
PARTITION BY toYYYYMM(Day)
ORDER BY (UserId, FeatureKey, Day, ServiceName)
TTL Day + INTERVAL {{ROLLUP_RETENTION_DAYS}} DAY;

{{DISTRIBUTED feature_usage_day BY cityHash64(UserId)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS feature_usage_day_mv {{ON_CLUSTER}}
TO feature_usage_day{{LOCAL}} AS
SELECT
    Attributes['user.id'] AS UserId,
    Attributes['feature.key'] AS FeatureKey,
    ServiceName,
    toDate(TimeUnix) AS Day,
    sum(Value) AS Uses
FROM otel_metrics_sum{{LOCAL}}
WHERE MetricName = 'feature.usage' AND IsMonotonic AND AggregationTemporality = 1
GROUP BY UserId, FeatureKey, ServiceName, Day;
