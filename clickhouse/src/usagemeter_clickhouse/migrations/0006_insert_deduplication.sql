-- The collector retries an insert of a spooled batch with the same
-- insert_deduplication_token until it commits (also after a crash between the
-- commit and the deletion of the batch from its spool). Plain MergeTree tables
-- remember recent block tokens only with non_replicated_deduplication_window;
-- the rollups fed by materialized views need it as well, since the collector
-- inserts with deduplicate_blocks_in_dependent_materialized_views = 1.

ALTER TABLE otel_metrics_sum {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_gauge {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_histogram {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_exponential_histogram {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_metrics_summary {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE otel_traces {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE feature_usage_minute {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE feature_usage_day {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE conversions_day {{ON_CLUSTER}} MODIFY SETTING non_replicated_deduplication_window = 10000;
