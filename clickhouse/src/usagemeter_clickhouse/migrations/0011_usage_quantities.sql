-- Usage as exact quantities, sliced by allow-listed dimension attributes, with corrections.
--
-- The rollups of 0003 and 0009 summed `feature.usage` values as Float64 "Uses", exact only for
-- integers. These tables sum them as Decimal128(6) "Quantity" (micro-units: tokens, bytes,
-- seconds, credits), keyed by a dimension: every point adds to its feature total row
-- (DimensionKey = '') and to one row per allow-listed attribute it carries
-- (DimensionKey = 'model', DimensionValue = 'gpt-4o'). The allow-list is the usage_dimensions
-- table, read by the views as rows arrive, so changing it rebuilds nothing.
--
-- Raw points are read once, by the view into the minute rollup; the day, month and ingest rollups
-- are views of the minute rollup's new rows. Corrections recorded through the API land in
-- usage_corrections and enter the minute rollup through a view of their own, so they reach every
-- rollup too; the raw tables are never rewritten.
--
-- The previous rollups stop being fed (their views are dropped first) and their contents are
-- copied once into the new tables; run the upgrade with the collectors stopped (their spools keep
-- every point meanwhile), as `usagemeter up` does by migrating before it starts them. The old
-- tables stay, readable, until an operator drops them.
--
-- Every statement may run again after a crash at any point: tables and views are created only if
-- missing, and each copy runs only while the view that feeds its table does not exist yet (the
-- views are created after every copy), in a fixed order under a fixed deduplication token, so
-- the blocks a crashed copy committed are skipped when it runs again. On a cluster each copy
-- reads and writes one shard's own tables: a sharded cluster's hosts each run this file, and
-- on a replicated one the runner sends data statements to one replica of every shard.

-- A Float64 value as an exact quantity: its shortest decimal digits, cut after the sixth decimal
-- (toDecimal128(Value, 6) scales the binary value: 123456789012345 became 123456789012344.995842).
CREATE FUNCTION IF NOT EXISTS usagemeter_quantity {{ON_CLUSTER}} AS (value) ->
    toDecimal128(toString(value), 6);

DROP VIEW IF EXISTS feature_usage_minute_mv {{ON_CLUSTER}};
DROP VIEW IF EXISTS feature_usage_day_mv {{ON_CLUSTER}};
DROP VIEW IF EXISTS feature_usage_ingest_mv {{ON_CLUSTER}};

-- The attributes usage may be sliced by, one row each; `usagemeter migrate` keeps it equal to
-- USAGEMETER_DIMENSION_ATTRIBUTES on every host. A table of each host's own, on every kind of
-- deployment (neither sharded nor replicated): the views of each host read it where rows arrive.
CREATE TABLE IF NOT EXISTS usage_dimensions {{ON_CLUSTER}} (
    Attribute String,
    Active Bool,
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY Attribute;

CREATE TABLE IF NOT EXISTS usage_minute{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    FeatureKey LowCardinality(String),
    DimensionKey LowCardinality(String),
    DimensionValue String,
    ServiceName LowCardinality(String),
    Minute DateTime('UTC'),
    Quantity Decimal128(6)
) ENGINE = {{REPLICATED}}SummingMergeTree(Quantity)
PARTITION BY toYYYYMM(Minute)
ORDER BY (UserId, FeatureKey, DimensionKey, DimensionValue, Minute, ServiceName)
TTL Minute + INTERVAL {{ROLLUP_RETENTION_DAYS}} DAY
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED usage_minute BY cityHash64(UserId)}};

CREATE TABLE IF NOT EXISTS usage_day{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    FeatureKey LowCardinality(String),
    DimensionKey LowCardinality(String),
    DimensionValue String,
    ServiceName LowCardinality(String),
    Day Date,
    Quantity Decimal128(6)
) ENGINE = {{REPLICATED}}SummingMergeTree(Quantity)
PARTITION BY toYYYYMM(Day)
ORDER BY (UserId, FeatureKey, DimensionKey, DimensionValue, Day, ServiceName)
TTL Day + INTERVAL {{ROLLUP_RETENTION_DAYS}} DAY
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED usage_day BY cityHash64(UserId)}};

-- Per calendar month and kept for good: lifetime totals outlive the day rollup's retention.
CREATE TABLE IF NOT EXISTS usage_month{{LOCAL}} {{ON_CLUSTER}} (
    UserId String,
    FeatureKey LowCardinality(String),
    DimensionKey LowCardinality(String),
    DimensionValue String,
    Month Date,
    Quantity Decimal128(6)
) ENGINE = {{REPLICATED}}SummingMergeTree(Quantity)
PARTITION BY toYear(Month)
ORDER BY (UserId, FeatureKey, DimensionKey, DimensionValue, Month)
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED usage_month BY cityHash64(UserId)}};

-- Per ingest minute (when the insert ran) and event minute: a reader that has summed every ingest
-- minute up to some point adds later ones, late points included, and knows which minute each
-- counts for, so rolling windows stay exact to the minute. Kept as long as the longest rolling
-- window (31 days) plus a day.
CREATE TABLE IF NOT EXISTS usage_ingest{{LOCAL}} {{ON_CLUSTER}} (
    IngestMinute DateTime('UTC'),
    UserId String,
    FeatureKey LowCardinality(String),
    DimensionKey LowCardinality(String),
    DimensionValue String,
    Minute DateTime('UTC'),
    Quantity Decimal128(6),
    -- Event minutes run close to ingest minutes, so a granule's range of them is narrow: the reads of
    -- the minutes leaving a rolling window skip every granule outside them.
    INDEX event_minute Minute TYPE minmax GRANULARITY 1
) ENGINE = {{REPLICATED}}SummingMergeTree(Quantity)
PARTITION BY toYYYYMMDD(IngestMinute)
ORDER BY (IngestMinute, UserId, FeatureKey, DimensionKey, DimensionValue, Minute)
TTL IngestMinute + INTERVAL 32 DAY
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED usage_ingest BY cityHash64(UserId)}};

-- Corrections: signed quantities recorded by an admin, with who and why. Never updated or deleted.
CREATE TABLE IF NOT EXISTS usage_corrections{{LOCAL}} {{ON_CLUSTER}} (
    CorrectionId UUID,
    UserId String,
    FeatureKey LowCardinality(String),
    DimensionKey LowCardinality(String),
    DimensionValue String,
    OccurredAt DateTime64(3, 'UTC'),
    Quantity Decimal128(6),
    Reason String,
    RecordedBy String,
    RecordedAt DateTime64(3, 'UTC')
) ENGINE = {{REPLICATED}}MergeTree
ORDER BY (UserId, FeatureKey, RecordedAt, CorrectionId)
SETTINGS non_replicated_deduplication_window = 10000;

{{DISTRIBUTED usage_corrections BY cityHash64(UserId)}};

-- Grants: extra allowance of a feature for a user over a time range. A void inserts a newer Version.
CREATE TABLE IF NOT EXISTS usage_grants{{LOCAL}} {{ON_CLUSTER}} (
    GrantId UUID,
    UserId String,
    FeatureKey String,
    DimensionValue String,
    Amount Decimal128(6),
    EffectiveFrom DateTime64(3, 'UTC'),
    ExpiresAt Nullable(DateTime64(3, 'UTC')),
    Reason String,
    GrantedBy String,
    GrantedAt DateTime64(3, 'UTC'),
    VoidedAt Nullable(DateTime64(3, 'UTC')),
    VoidedBy String,
    VoidReason String,
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY (UserId, GrantId);

{{DISTRIBUTED usage_grants BY cityHash64(UserId)}};

-- The previous rollups' contents, copied once. They had no dimensions: every row is a feature total.
-- Float64 sums of integers are exact up to 2^53, and so is their copy (usagemeter_quantity).
INSERT INTO usage_minute{{LOCAL}}
SETTINGS insert_deduplicate = 1, insert_deduplication_token = 'usagemeter_0011_usage_minute',
    max_threads = 1, max_insert_threads = 1
SELECT UserId, FeatureKey, '', '', ServiceName, Minute, usagemeter_quantity(sum(Uses))
FROM feature_usage_minute{{LOCAL}}
WHERE (SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'usage_minute_mv') = 0
GROUP BY UserId, FeatureKey, ServiceName, Minute
ORDER BY UserId, FeatureKey, Minute, ServiceName;

INSERT INTO usage_day{{LOCAL}}
SETTINGS insert_deduplicate = 1, insert_deduplication_token = 'usagemeter_0011_usage_day',
    max_threads = 1, max_insert_threads = 1
SELECT UserId, FeatureKey, '', '', ServiceName, Day, usagemeter_quantity(sum(Uses))
FROM feature_usage_day{{LOCAL}}
WHERE (SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'usage_day_mv') = 0
GROUP BY UserId, FeatureKey, ServiceName, Day
ORDER BY UserId, FeatureKey, Day, ServiceName;

-- Each day's total is converted before the month sums them, as the day rollup holds it.
INSERT INTO usage_month{{LOCAL}}
SETTINGS insert_deduplicate = 1, insert_deduplication_token = 'usagemeter_0011_usage_month',
    max_threads = 1, max_insert_threads = 1
SELECT UserId, FeatureKey, '', '', Month, sum(Quantity)
FROM (
    SELECT UserId, FeatureKey, toStartOfMonth(Day) AS Month, usagemeter_quantity(sum(Uses)) AS Quantity
    FROM feature_usage_day{{LOCAL}}
    WHERE (SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'usage_month_mv') = 0
    GROUP BY UserId, FeatureKey, ServiceName, Day
)
GROUP BY UserId, FeatureKey, Month
ORDER BY UserId, FeatureKey, Month;

-- The shard's last 32 days of usage as if each minute had been ingested in its own minute: readers
-- see it as long settled, and rolling windows find the minutes that leave them. The days are
-- counted back from the newest minute copied, not from now(), so a copy run again selects the
-- same rows.
INSERT INTO usage_ingest{{LOCAL}}
SETTINGS insert_deduplicate = 1, insert_deduplication_token = 'usagemeter_0011_usage_ingest',
    max_threads = 1, max_insert_threads = 1
SELECT Minute, UserId, FeatureKey, '', '', Minute, usagemeter_quantity(sum(Uses))
FROM feature_usage_minute{{LOCAL}}
WHERE Minute >= (SELECT max(Minute) FROM feature_usage_minute{{LOCAL}}) - INTERVAL 32 DAY
  AND (SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'usage_ingest_mv') = 0
GROUP BY UserId, FeatureKey, Minute
ORDER BY Minute, UserId, FeatureKey;

-- Raw points are read once, into the minute rollup; the day, month and ingest rollups are views
-- of the minute rollup's new rows (so are corrections, which enter through the minute rollup too).
-- Created minute first: once a view of the minute rollup exists, so does the view that feeds it,
-- which keeps the copies above from being run again through them.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_minute_mv {{ON_CLUSTER}}
TO usage_minute{{LOCAL}} AS
SELECT
    Attributes['user.id'] AS UserId,
    Attributes['feature.key'] AS FeatureKey,
    DimensionKey,
    if(DimensionKey = '', '', Attributes[DimensionKey]) AS DimensionValue,
    ServiceName,
    toStartOfMinute(TimeUnix) AS Minute,
    sum(usagemeter_quantity(Value)) AS Quantity
FROM otel_metrics_sum{{LOCAL}}
ARRAY JOIN arrayConcat([''], arrayFilter(k -> mapContains(Attributes, k),
    (SELECT groupArray(Attribute) FROM usage_dimensions FINAL WHERE Active))) AS DimensionKey
WHERE MetricName = 'feature.usage' AND IsMonotonic AND AggregationTemporality = 1
GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, ServiceName, Minute;

-- A correction counts on its feature total and, when it names one, on its dimension value.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_corrections_minute_mv {{ON_CLUSTER}}
TO usage_minute{{LOCAL}} AS
SELECT UserId, FeatureKey, Slice.1 AS DimensionKey, Slice.2 AS DimensionValue,
    'usagemeter.correction' AS ServiceName, toStartOfMinute(OccurredAt) AS Minute, Quantity
FROM (SELECT *, arrayConcat([('', '')], if(DimensionKey = '', [], [(DimensionKey, DimensionValue)])) AS Slices
      FROM usage_corrections{{LOCAL}})
ARRAY JOIN Slices AS Slice;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_day_mv {{ON_CLUSTER}}
TO usage_day{{LOCAL}} AS
SELECT UserId, FeatureKey, DimensionKey, DimensionValue, ServiceName, toDate(Minute) AS Day, sum(Quantity) AS Quantity
FROM usage_minute{{LOCAL}}
GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, ServiceName, Day;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_month_mv {{ON_CLUSTER}}
TO usage_month{{LOCAL}} AS
SELECT UserId, FeatureKey, DimensionKey, DimensionValue, toStartOfMonth(Minute) AS Month, sum(Quantity) AS Quantity
FROM usage_minute{{LOCAL}}
GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, Month;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_ingest_mv {{ON_CLUSTER}}
TO usage_ingest{{LOCAL}} AS
SELECT toStartOfMinute(now('UTC')) AS IngestMinute, UserId, FeatureKey, DimensionKey, DimensionValue, Minute,
    sum(Quantity) AS Quantity
FROM usage_minute{{LOCAL}}
GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, Minute;
