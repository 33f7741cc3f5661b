"""``usagemeter migrate`` on a sharded cluster without Keeper: every host gets the schema and its own ledger."""

from __future__ import annotations

from pathlib import Path

from tests.clickhouse_server import ClickHouseServer
from tests.cluster.support import cluster_env
from tests.conftest import CLUSTER, ServerFactory, free_port
from tests.server.processes import run_migrate, server_env, usagemeter
from usagemeter_clickhouse import available_migrations, tables

#: The public tables readers and the collector use, each a Distributed table on a cluster.
PUBLIC_TABLES = (
    tables.METRICS_SUM,
    tables.METRICS_GAUGE,
    tables.METRICS_HISTOGRAM,
    tables.METRICS_EXPONENTIAL_HISTOGRAM,
    tables.METRICS_SUMMARY,
    tables.TRACES,
    tables.USAGE_MINUTE,
    tables.USAGE_DAY,
    tables.USAGE_INGEST,
    tables.USAGE_MONTH,
    tables.USAGE_CORRECTIONS,
    tables.USAGE_GRANTS,
    tables.PLANS,
    tables.PLAN_ASSIGNMENTS,
    tables.CONVERSIONS_DAY,
)


def engines(server: ClickHouseServer, database: str) -> dict[str, str]:
    answer = server.query(f"SELECT name, engine_full FROM system.tables WHERE database = '{database}' FORMAT TSVRaw")
    return dict(line.split("\t", 1) for line in answer.splitlines())


def ledger(server: ClickHouseServer, database: str) -> list[str]:
    answer = server.query(
        f"SELECT Version, AppliedAt FROM `{database}`.{tables.SCHEMA_MIGRATIONS} ORDER BY Version FORMAT TSV"
    )
    return answer.splitlines()


def test_migrate_prepares_every_shard_with_distributed_tables_over_local_ones(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    for server in clickhouse_cluster:
        found = engines(server, cluster_database)
        for table in PUBLIC_TABLES:
            assert found[table].startswith(f"Distributed('{CLUSTER}', '{cluster_database}', '{table}_local'"), table
            assert "MergeTree" in found[f"{table}_local"], table
            assert "TTL" not in found[table]
        assert found["otel_metrics_landing_sum"].strip("`") == "Null"
        assert len(ledger(server, cluster_database)) == len(available_migrations())


def test_sharding_keys_keep_a_users_usage_and_plan_on_one_shard(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    found = engines(clickhouse_cluster[1], cluster_database)
    assert found[tables.METRICS_SUM].endswith("cityHash64(Attributes['user.id']))")
    for table in (
        tables.USAGE_MINUTE,
        tables.USAGE_DAY,
        tables.USAGE_MONTH,
        tables.USAGE_INGEST,
        tables.USAGE_CORRECTIONS,
        tables.USAGE_GRANTS,
        tables.PLAN_ASSIGNMENTS,
    ):
        assert found[table].endswith("cityHash64(UserId))"), table
    assert found[tables.PLANS].endswith("cityHash64(PlanId))")
    views = clickhouse_cluster[1].query(
        f"SELECT name, create_table_query FROM system.tables WHERE database = '{cluster_database}' "
        "AND engine = 'MaterializedView' FORMAT TSVRaw"
    )
    # Each shard rolls up its own raw rows into its minute rollup, and the others from that.
    rollup_view = next(line for line in views.splitlines() if line.startswith("usage_minute_mv"))
    assert f"TO {cluster_database}.usage_minute_local" in rollup_view
    assert f"FROM {cluster_database}.otel_metrics_sum_local" in rollup_view
    # The allow-list each host's views read is that host's own table, not a Distributed one.
    assert f"FROM {cluster_database}.usage_dimensions FINAL" in rollup_view
    day_view = next(line for line in views.splitlines() if line.startswith("usage_day_mv"))
    assert f"TO {cluster_database}.usage_day_local" in day_view
    assert f"FROM {cluster_database}.usage_minute_local" in day_view
    assert engines(clickhouse_cluster[1], cluster_database)[tables.USAGE_DIMENSIONS].startswith("ReplacingMergeTree")
    landing_view = next(line for line in views.splitlines() if line.startswith("otel_metrics_sum_landing_mv"))
    assert f"TO {cluster_database}.otel_metrics_sum " in landing_view


def test_migrate_rerun_on_the_cluster_changes_nothing(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    before = [(engines(s, cluster_database), ledger(s, cluster_database)) for s in clickhouse_cluster]
    run_migrate(cluster_env(clickhouse_cluster[1], cluster_database))
    assert [(engines(s, cluster_database), ledger(s, cluster_database)) for s in clickhouse_cluster] == before


def test_retention_is_set_on_the_shards_local_tables(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str
) -> None:
    run_migrate(cluster_env(clickhouse_cluster[0], cluster_database, raw_retention_days="9"))
    for server in clickhouse_cluster:
        found = engines(server, cluster_database)
        assert "toIntervalDay(9)" in found[f"{tables.METRICS_SUM}_local"]
        assert "toIntervalDay(9)" in found[f"{tables.TRACES}_local"]
        assert "toIntervalDay(400)" in found[f"{tables.USAGE_DAY}_local"]


def test_listed_hosts_replace_the_ones_read_from_the_cluster(
    clickhouse_cluster: list[ClickHouseServer], database: str
) -> None:
    hosts = ",".join(f"http://127.0.0.1:{server.http_port}" for server in clickhouse_cluster)
    run_migrate(cluster_env(clickhouse_cluster[1], database, clickhouse_hosts=hosts))
    for server in clickhouse_cluster:
        assert engines(server, database)[tables.USAGE_DAY].startswith("Distributed(")
        assert len(ledger(server, database)) == len(available_migrations())


def test_migrate_with_a_shard_down_fails_in_one_line_naming_the_host(
    server_factory: ServerFactory, database: str
) -> None:
    entry, down = server_factory.cluster()
    down.stop()
    result = usagemeter("migrate", env=cluster_env(entry, database))
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()
    assert len(message) == 1, result.stderr
    assert f"127.0.0.1:{down.tcp_port} (shard 2)" in message[0]
    assert database not in entry.query("SHOW DATABASES FORMAT TSV").split()


def test_a_listed_host_that_is_down_is_named_and_no_host_is_changed(
    clickhouse_cluster: list[ClickHouseServer], database: str
) -> None:
    nowhere = free_port()
    hosts = f"http://127.0.0.1:{clickhouse_cluster[0].http_port},http://127.0.0.1:{nowhere}"
    result = usagemeter("migrate", env=cluster_env(clickhouse_cluster[0], database, clickhouse_hosts=hosts))
    assert result.returncode == 2, result.stderr
    assert f"cannot reach ClickHouse host 127.0.0.1:{nowhere}" in result.stderr.strip().splitlines()[-1]
    assert database not in clickhouse_cluster[0].query("SHOW DATABASES FORMAT TSV").split()


def test_a_cluster_the_server_does_not_know_is_named(clickhouse_server: ClickHouseServer, database: str) -> None:
    result = usagemeter("migrate", env=cluster_env(clickhouse_server, database))
    assert result.returncode == 2, result.stderr
    entry = f"127.0.0.1:{clickhouse_server.http_port}"
    assert result.stderr.strip() == f"usagemeter migrate: cluster '{CLUSTER}' is not in the remote_servers of {entry}"


def test_a_cluster_needs_a_server(tmp_path: Path) -> None:
    env = server_env(f"chdb://{tmp_path / 'engine'}", "usagemeter", clickhouse_cluster=CLUSTER)
    result = usagemeter("migrate", env=env)
    assert result.returncode == 2, result.stderr
    assert "a ClickHouse cluster needs a server URL" in result.stderr
