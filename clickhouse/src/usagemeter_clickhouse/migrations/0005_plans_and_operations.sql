-- Plans and user -> plan assignments, managed through the API's admin endpoints.
-- Every change inserts a new row with a larger Version; readers take the newest
-- row per key (FINAL), so a change takes effect as soon as it is inserted.
-- Limits is a JSON object: feature key -> non-negative integer, or null for unlimited.

CREATE TABLE IF NOT EXISTS plans{{LOCAL}} {{ON_CLUSTER}} (
    PlanId String,
    Name String,
    Period LowCardinality(String),
    NearLimitRatio Float64,
    Enforcement LowCardinality(String),
    Limits String,
    IsDefault Bool,
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY PlanId;

{{DISTRIBUTED plans BY cityHash64(PlanId)}};

CREATE TABLE IF NOT EXISTS plan_assignments{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    PlanId String,
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY UserId;

{{DISTRIBUTED plan_assignments BY cityHash64(UserId)}};

-- Conversions per day and name, so totals outlive the raw retention.
CREATE TABLE IF NOT EXISTS conversions_day{{LOCAL}} {{ON_CLUSTER}} (
    Day Date,
    ConversionName LowCardinality(String),
    ServiceName LowCardinality(String),
    Conversions Float64
) ENGINE = {{REPLICATED}}SummingMergeTree(Conversions)
PARTITION BY toYYYYMM(Day)
ORDER BY (Day, ConversionName, ServiceName)
TTL Day + INTERVAL {{ROLLUP_RETENTION_DAYS}} DAY;

-- Filled only by each shard's view below, never inserted into through the Distributed
-- table: a key no query constrains keeps shard pruning from skipping a shard that holds rows.
{{DISTRIBUTED conversions_day BY rand()}};

CREATE MATERIALIZED VIEW IF NOT EXISTS conversions_day_mv {{ON_CLUSTER}}
TO conversions_day{{LOCAL}} AS
SELECT
    toDate(TimeUnix) AS Day,
    Attributes['conversion.name'] AS ConversionName,
    ServiceName,
    sum(Value) AS Conversions
FROM otel_metrics_sum{{LOCAL}}
WHERE MetricName = 'conversion.count' AND IsMonotonic AND AggregationTemporality = 1
GROUP BY Day, ConversionName, ServiceName;

-- Conversions stored before this migration; skipped once the rollup holds anything.
INSERT INTO conversions_day{{LOCAL}}
SELECT toDate(TimeUnix), Attributes['conversion.name'], ServiceName, sum(Value)
FROM otel_metrics_sum{{LOCAL}}
WHERE MetricName = 'conversion.count' AND IsMonotonic AND AggregationTemporality = 1
  AND (SELECT count() FROM conversions_day{{LOCAL}}) = 0
GROUP BY toDate(TimeUnix), Attributes['conversion.name'], ServiceName;
