-- Threshold webhooks: the endpoints admins register, the events due to them (a durable
-- outbox every API replica reads), each event's delivery to each endpoint, every attempt,
-- and the API replicas alive (which share the sending between them).

-- An endpoint; a delete inserts a newer Version with DeletedAt set.
CREATE TABLE IF NOT EXISTS webhook_endpoints{{LOCAL}} {{ON_CLUSTER}} (
    EndpointId UUID,
    Url String,
    Events Array(LowCardinality(String)),
    Secret String,
    Description String,
    CreatedBy String,
    CreatedAt DateTime64(3, 'UTC'),
    DeletedAt Nullable(DateTime64(3, 'UTC')),
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY EndpointId;

{{DISTRIBUTED webhook_endpoints BY cityHash64(EndpointId)}};

-- One row per event id (stable per user, feature, dimension, window, period and threshold), as
-- first recorded: Version falls as OccurredAt grows, so a later detection of the same event never
-- replaces the body already sent. GroupKey is the event less its period (what repeats each period).
-- DimensionValue is '' for a feature-total limit; a quota.reset's period is the one that ended.
CREATE TABLE IF NOT EXISTS webhook_events{{LOCAL}} {{ON_CLUSTER}} (
    EventId String,
    Type LowCardinality(String),
    GroupKey String,
    UserId String,
    FeatureKey String,
    DimensionValue String,
    Window LowCardinality(String),
    WindowKind LowCardinality(String),
    PeriodStart DateTime64(3, 'UTC'),
    PeriodEnd DateTime64(3, 'UTC'),
    OccurredAt DateTime64(3, 'UTC'),
    Payload String,
    KeepUntil DateTime('UTC'),
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY EventId
TTL KeepUntil;

{{DISTRIBUTED webhook_events BY cityHash64(EventId)}};

-- Where an event stands with an endpoint: pending (NextAttemptAt), delivered or failed. Each
-- attempt inserts a newer Version; the first row (Version 1) never replaces progress.
CREATE TABLE IF NOT EXISTS webhook_deliveries{{LOCAL}} {{ON_CLUSTER}} (
    EventId String,
    EndpointId UUID,
    State LowCardinality(String),
    Attempts UInt16,
    NextAttemptAt DateTime64(3, 'UTC'),
    CreatedAt DateTime64(3, 'UTC'),
    UpdatedAt DateTime64(3, 'UTC'),
    LastStatus UInt16,
    LastError String,
    Version UInt64
) ENGINE = {{REPLICATED}}ReplacingMergeTree(Version)
ORDER BY (EventId, EndpointId)
TTL toDateTime(CreatedAt) + INTERVAL 35 DAY;

{{DISTRIBUTED webhook_deliveries BY cityHash64(EventId)}};

-- Every attempt to send an event to an endpoint, for the endpoint's delivery log.
CREATE TABLE IF NOT EXISTS webhook_attempts{{LOCAL}} {{ON_CLUSTER}} (
    EndpointId UUID,
    EventId String,
    Attempt UInt16,
    AttemptedAt DateTime64(3, 'UTC'),
    StatusCode UInt16,
    Error String,
    DurationMs UInt32,
    ReplicaId String
) ENGINE = {{REPLICATED}}MergeTree
ORDER BY (EndpointId, EventId, Attempt, AttemptedAt)
TTL toDateTime(AttemptedAt) + INTERVAL 35 DAY;

{{DISTRIBUTED webhook_attempts BY cityHash64(EventId)}};

-- Each API replica's heartbeat, stamped by ClickHouse's clock so replicas' own clocks do not matter.
CREATE TABLE IF NOT EXISTS api_replicas{{LOCAL}} {{ON_CLUSTER}} (
    ReplicaId String,
    Host String,
    StartedAt DateTime64(3, 'UTC'),
    SeenAt DateTime64(3, 'UTC')
) ENGINE = {{REPLICATED}}ReplacingMergeTree(SeenAt)
ORDER BY ReplicaId
TTL toDateTime(SeenAt) + INTERVAL 1 DAY;

{{DISTRIBUTED api_replicas BY cityHash64(ReplicaId)}};
