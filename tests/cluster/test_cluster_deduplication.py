"""A retried block with its deduplication token is stored once: landing table, Distributed table, shards, rollups."""

from __future__ import annotations

import time

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint

from tests.clickhouse_server import ClickHouseServer
from tests.cluster.support import FEATURE, cluster_env, local_raw_usage, local_usage
from tests.server.processes import run_migrate
from usagemeter_clickhouse import Client, connect, tables
from usagemeter_collector._drain.landing import LANDING_TABLES, format_schema, length_delimited
from usagemeter_collector._drain.writer import INSERT_SETTINGS

#: Enough users that both shards hold some of them.
USES = {f"user-{n}": n + 1 for n in range(12)}
ROLLUPS = ("usage_minute_local", "usage_day_local", "usage_month_local", "usage_ingest_local")


def usage_request(uses: dict[str, int]) -> bytes:
    """One OTLP metrics request with a delta ``feature.usage`` point per user."""
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="backend")))
    metric = resource.scope_metrics.add().metrics.add()
    metric.name = tables.USAGE_METRIC
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.is_monotonic = True
    now = time.time_ns()
    for user, amount in uses.items():
        point = NumberDataPoint(start_time_unix_nano=now - 10**9, time_unix_nano=now, as_int=amount)
        for key, value in ((tables.USER_ATTRIBUTE, user), (tables.FEATURE_ATTRIBUTE, FEATURE)):
            point.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
        metric.sum.data_points.append(point)
    return request.SerializeToString()


def insert_as_the_collector(client: Client, body: bytes, token: str) -> None:
    """The collector's insert of a spooled request into the sum landing table, with its settings and token."""
    settings = INSERT_SETTINGS | {"insert_deduplication_token": token, "format_schema": format_schema(None)}
    client.raw_insert(LANDING_TABLES["sum"], insert_block=length_delimited([body]), fmt="Protobuf", settings=settings)


def stored_per_shard(shards: list[ClickHouseServer], database: str) -> list[list[dict[str, float]]]:
    """Per shard: the raw usage and each rollup's usage stored on that shard alone."""
    return [[local_raw_usage(s, database)] + [local_usage(s, database, t) for t in ROLLUPS] for s in shards]


def assert_stored_once(shards: list[ClickHouseServer], database: str) -> None:
    per_shard = stored_per_shard(shards, database)
    for tables_of_shard in per_shard:
        assert tables_of_shard[0], "every shard holds some of the users"
        assert all(rollup == tables_of_shard[0] for rollup in tables_of_shard[1:])
    together = {user: total for tables_of_shard in per_shard for user, total in tables_of_shard[0].items()}
    assert together == {user: float(amount) for user, amount in USES.items()}


def test_a_retried_block_with_its_token_is_stored_once_on_the_shards_rollups_included(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    client = connect(clickhouse_cluster[0].url(), cluster_database)
    try:
        body = usage_request(USES)
        for _ in range(3):
            insert_as_the_collector(client, body, "segment-1:otel_metrics_landing_sum:0")
    finally:
        client.close()
    assert_stored_once(clickhouse_cluster, cluster_database)


def test_a_block_half_stored_when_the_other_shard_refused_it_is_stored_once_on_retry(
    clickhouse_cluster: list[ClickHouseServer], database: str
) -> None:
    entry, other = clickhouse_cluster
    run_migrate(cluster_env(entry, database))
    client = connect(entry.url(), database)
    try:
        body = usage_request(USES)
        # The other shard refuses the rows it receives (as a shard failing mid-insert would) ...
        other.query(f"ALTER TABLE `{database}`.otel_metrics_sum_local ADD CONSTRAINT refuse CHECK Value < 0")
        with pytest.raises(DatabaseError):
            insert_as_the_collector(client, body, "segment-2:otel_metrics_landing_sum:0")
        # ... after the entry's own shard stored its part of the block: the retry must not add it again.
        assert local_raw_usage(entry, database)
        other.query(f"ALTER TABLE `{database}`.otel_metrics_sum_local DROP CONSTRAINT refuse")
        insert_as_the_collector(client, body, "segment-2:otel_metrics_landing_sum:0")
        insert_as_the_collector(client, body, "segment-2:otel_metrics_landing_sum:0")
    finally:
        client.close()
    assert_stored_once([entry, other], database)


def test_retried_rows_inserted_into_a_distributed_table_are_stored_once_on_their_shards(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    """The collector's row path (spans, and metrics when it decodes them itself) inserts into the public tables."""
    now = time.time_ns()
    rows = [[now, f"{n:032x}", f"{n:016x}", "feature.use", "backend"] for n in range(40)]
    columns = ["Timestamp", "TraceId", "SpanId", "SpanName", "ServiceName"]
    client = connect(clickhouse_cluster[1].url(), cluster_database)
    try:
        for _ in range(2):
            settings = INSERT_SETTINGS | {"insert_deduplication_token": "segment-3:otel_traces:0"}
            client.insert(tables.TRACES, rows, column_names=columns, settings=settings)
    finally:
        client.close()
    per_shard = [
        set(s.query(f"SELECT TraceId FROM `{cluster_database}`.otel_traces_local FORMAT TSV").split())
        for s in clickhouse_cluster
    ]
    assert all(per_shard) and not per_shard[0] & per_shard[1]
    counts = [int(s.query(f"SELECT count() FROM `{cluster_database}`.otel_traces_local")) for s in clickhouse_cluster]
    assert sum(counts) == len(rows)
