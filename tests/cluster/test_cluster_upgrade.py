"""Upgrading a sharded cluster of the previous release with ``usagemeter migrate``: each shard copies its own."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

from tests.clickhouse.upgrade import (
    expected_totals,
    migrate_previous_release,
    new_totals,
    old_totals,
    record_correction,
    usage_points,
    write_as_the_collector,
)
from tests.clickhouse_server import ClickHouseServer
from tests.cluster.support import cluster_env, local_usage
from tests.conftest import CLUSTER
from tests.server.processes import run_migrate
from usagemeter_clickhouse import SchemaOptions, connect, tables


def local_old_usage(server: ClickHouseServer, database: str) -> dict[str, float]:
    answer = server.query(f"SELECT UserId, sum(Uses) FROM `{database}`.feature_usage_day_local GROUP BY 1 FORMAT TSV")
    return {user: float(total) for user, total in (line.split("\t") for line in answer.splitlines())}


def test_an_upgraded_cluster_keeps_every_total_on_its_shard_and_adds_new_usage_exactly(
    clickhouse_cluster: list[ClickHouseServer],
) -> None:
    database = f"u_{uuid.uuid4().hex[:12]}"
    for server in clickhouse_cluster:
        host = connect(server.url(), database, create_database=True)
        migrate_previous_release(host, SchemaOptions(cluster=CLUSTER))
        host.close()
    entry = connect(clickhouse_cluster[0].url(), database)
    try:
        points = usage_points(users=8, days=40, per_day=1)
        write_as_the_collector(entry, points)
        before = old_totals(entry)
        assert before == expected_totals(points)
        before_per_shard = [local_old_usage(server, database) for server in clickhouse_cluster]
        assert all(before_per_shard), "both shards hold some users"

        run_migrate(cluster_env(clickhouse_cluster[1], database, dimension_attributes="model,region"))

        assert new_totals(entry) == before
        assert [local_usage(s, database, "usage_day_local") for s in clickhouse_cluster] == before_per_shard
        assert [local_usage(s, database, "usage_month_local") for s in clickhouse_cluster] == before_per_shard
        for server in clickhouse_cluster:
            listed = server.query(
                f"SELECT Attribute FROM `{database}`.{tables.USAGE_DIMENSIONS} FINAL WHERE Active ORDER BY 1 FORMAT TSV"
            )
            assert listed.split() == ["model", "region"]

        write_as_the_collector(entry, [(f"user-{n}", "chat", time.time_ns(), 0.1) for n in range(8)], model="gpt-4o")
        write_as_the_collector(entry, [(f"user-{n}", "chat", time.time_ns(), 0.2) for n in range(8)], model="gpt-4o")
        record_correction(entry, "user-3", "chat", "-0.3", ("model", "gpt-4o"))
        after = new_totals(entry)
        for n in range(8):
            key = (f"user-{n}", "chat", None)
            assert after["lifetime"][key] == before["lifetime"][key] + (0 if n == 3 else Decimal("0.3"))
        sliced = entry.query(
            f"SELECT UserId, sum(Quantity) FROM {tables.USAGE_DAY} WHERE DimensionKey = 'model' GROUP BY 1"
        ).result_rows
        assert dict(sliced) == {f"user-{n}": Decimal("0.3") for n in range(8) if n != 3} | {"user-3": Decimal(0)}
    finally:
        entry.close()
        for server in clickhouse_cluster:
            server.query(f"DROP DATABASE IF EXISTS `{database}`")
