-- The collector retries an insert of a spooled batch with the same
-- insert_deduplication_token until it commits (also after a crash between the
-- commit and the deletion of the batch from its spool). Plain MergeTree tables
-- remember recent block tokens only with non_replicated_deduplication_window;
-- the rollups fed by materialized views need it as well, since the collector
-- inserts with deduplicate_blocks_in_dependent_materialized_views = 1.

ALTER TABLE otel_metrics_sum{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_gauge{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_histogram{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_exponential_histogram{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_summary{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_traces{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE feature_usage_minute{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE feature_usage_day{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE conversions_day{{LOCAL}} {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
