"""The schema as rendered for a single server, a sharded cluster and a replicated cluster (Keeper cannot run here)."""

from __future__ import annotations

import re

import pytest

from usagemeter_clickhouse import SchemaError, SchemaOptions, available_migrations, tables
from usagemeter_clickhouse._cluster import one_per_shard
from usagemeter_clickhouse._migrate import ledger_statement

CLUSTER = "metering"
DATABASE = "usagemeter"
REPLICATED = SchemaOptions(cluster=CLUSTER, replicated=True)
SHARDED = SchemaOptions(cluster=CLUSTER)


def rendered(options: SchemaOptions) -> list[str]:
    return [ledger_statement(options)] + [s for m in available_migrations() for s in m.statements(options, DATABASE)]


def engine(statement: str) -> str:
    match = re.search(r"ENGINE = (\w+)", statement)
    return match[1] if match else ""


def _host_table(statement: str) -> bool:
    match = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
    return bool(match) and match[1] in tables.HOST_TABLES  # type: ignore[index]


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_the_dimension_allow_list_is_a_plain_table_on_every_host(options: SchemaOptions) -> None:
    statements = rendered(options)
    created = [s for s in statements if _host_table(s)]
    assert [re.search(r"EXISTS (\w+)", s)[1] for s in created] == [tables.USAGE_DIMENSIONS]  # type: ignore[index]
    assert engine(created[0]) == "ReplacingMergeTree"
    assert options.on_cluster in created[0].splitlines()[0]
    assert not any(
        f"{tables.USAGE_DIMENSIONS}_local" in s or ("Distributed" in s and tables.USAGE_DIMENSIONS in s)
        for s in statements
    )


def test_every_replicated_statement_runs_on_the_whole_cluster() -> None:
    for statement in rendered(REPLICATED):
        if statement.startswith(("CREATE", "ALTER")):
            assert f"ON CLUSTER `{CLUSTER}`" in statement.splitlines()[0], statement[:200]


def test_every_replicated_table_has_a_replicated_engine_with_keeper_path_and_replica_macros() -> None:
    merge_trees = [s for s in rendered(REPLICATED) if "MergeTree" in engine(s) and not _host_table(s)]
    assert len(merge_trees) == 1 + 24  # the ledger and every data table
    for statement in merge_trees:
        assert engine(statement).startswith("Replicated"), statement[:120]
        assert "'/clickhouse/tables/" in statement and "{replica}" in statement
    data_tables = [s for s in merge_trees if tables.SCHEMA_MIGRATIONS not in s]
    assert all("'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in s for s in data_tables)
    day = next(s for s in data_tables if "feature_usage_day_local" in s)
    assert "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Uses)" in day
    quantities = next(s for s in data_tables if "usage_day_local" in s and "feature_" not in s)
    assert (
        "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Quantity)"
        in quantities
    )
    ledger = merge_trees[0]
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', AppliedAt)"
        in (ledger)
    )


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_each_local_table_has_a_distributed_table_without_ttl_sharded_deterministically(options: SchemaOptions) -> None:
    statements = rendered(options)
    created = [re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", s) for s in statements]
    names = [m[1] for m in created if m]
    local = [name for name in names if name.endswith("_local")]
    distributed = [s for s in statements if engine(s) == "Distributed"]
    assert sorted(name.removesuffix("_local") for name in local) == sorted(
        re.search(r"EXISTS (\w+)", s)[1]
        for s in distributed  # type: ignore[index]
    )
    for statement in distributed:
        name = re.search(r"EXISTS (\w+)", statement)[1]  # type: ignore[index]
        assert names.index(f"{name}_local") < names.index(name), "the local table exists first"
        assert f"Distributed('{CLUSTER}', '{DATABASE}', '{name}_local', " in statement
        assert " TTL " not in statement and "ORDER BY" not in statement
        assert "rand()" not in statement or name == tables.CONVERSIONS_DAY  # filled only by per-shard views


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_rollup_views_read_and_write_the_shards_own_tables_and_landing_views_the_distributed_ones(
    options: SchemaOptions,
) -> None:
    views = [s for s in rendered(options) if s.startswith("CREATE MATERIALIZED VIEW")]
    for view in views:
        target = re.search(r"\bTO (\w+)", view)[1]  # type: ignore[index]
        sources = [name for name in re.findall(r"\bFROM (\w+)", view) if name not in tables.HOST_TABLES]
        if sources[-1].startswith("otel_metrics_landing_"):
            assert not target.endswith("_local"), view[:120]
        else:
            assert all(s.endswith("_local") for s in sources) and target.endswith("_local"), view[:120]


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_usage_views_read_the_allow_list_of_the_host_the_rows_arrive_on(options: SchemaOptions) -> None:
    views = [s for s in rendered(options) if s.startswith("CREATE MATERIALIZED VIEW") and "feature.usage" in s]
    sliced = [v for v in views if f"FROM {tables.USAGE_DIMENSIONS} FINAL WHERE Active" in v]
    # Raw points are sliced once, into the minute rollup; the other usage rollups are views of it.
    assert len(sliced) == 1 and re.search(r"\bTO usage_minute_local", sliced[0])
    cascaded = [
        s for s in rendered(options) if s.startswith("CREATE MATERIALIZED VIEW") and "FROM usage_minute_local" in s
    ]
    assert len(cascaded) == 3 and all(re.search(r"\bTO usage_(day|month|ingest)_local", v) for v in cascaded)


def test_the_sharded_schema_needs_no_keeper() -> None:
    for statement in rendered(SHARDED):
        assert "ON CLUSTER" not in statement and "Replicated" not in statement


def test_a_single_server_keeps_its_table_names_and_engines() -> None:
    statements = rendered(SchemaOptions())
    joined = "\n".join(statements)
    assert "_local" not in joined and "Distributed" not in joined and "Replicated" not in joined
    assert "ON CLUSTER" not in joined and "{{" not in joined
    assert any(s.startswith(f"CREATE TABLE IF NOT EXISTS {tables.METRICS_SUM} ") for s in statements)


def test_replication_needs_a_cluster() -> None:
    with pytest.raises(SchemaError, match="needs the cluster"):
        SchemaOptions(replicated=True)


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_every_table_holding_data_on_a_cluster_is_a_shards_local_table(options: SchemaOptions) -> None:
    """A migration that creates a data table without ``{{LOCAL}}`` and its ``{{DISTRIBUTED}}`` fails here."""
    for statement in rendered(options)[1:]:
        if _host_table(statement):
            continue
        if "MergeTree" in engine(statement):
            name = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)[1]  # type: ignore[index]
            assert name.endswith("_local"), name
        elif statement.startswith("CREATE TABLE"):
            assert engine(statement) in ("Distributed", "Null"), statement[:120]


@pytest.mark.parametrize("options", [SHARDED, REPLICATED], ids=["sharded", "replicated"])
def test_data_statements_read_and_write_one_shards_own_tables(options: SchemaOptions) -> None:
    """So each host of a sharded cluster, and one replica per shard of a replicated one, copies its own rows."""
    inserts = [s for s in rendered(options) if s.startswith("INSERT")]
    assert len(inserts) == 6  # conversions (0005), trace lookups (0010) and the four usage rollups (0011)
    for statement in inserts:
        read = re.findall(r"\bFROM (\w+)", statement)
        assert re.match(r"INSERT INTO \w+_local\b", statement), statement[:120]
        assert all(name.endswith("_local") or name == "system" for name in read), statement[:200]
        assert "ON CLUSTER" not in statement


def test_one_replica_of_each_shard_runs_the_data_statements() -> None:
    first, second, third = object(), object(), object()
    members = [(first, "1"), (second, "1"), (third, "2")]
    assert one_per_shard(members) == [first, third]  # type: ignore[arg-type]
