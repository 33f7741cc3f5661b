from __future__ import annotations

import pytest

from usagemeter_clickhouse import (
    SchemaError,
    SchemaOptions,
    applied_versions,
    available_migrations,
    connect,
    migrate,
    migrate_deployment,
    tables,
)


def _tables(client) -> set[str]:
    rows = client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    return {r[0] for r in rows}


def test_migrations_create_exporter_compatible_tables(clickhouse):
    names = _tables(clickhouse)
    for table in (tables.METRICS_SUM, tables.METRICS_GAUGE, tables.METRICS_HISTOGRAM, tables.TRACES):
        assert table in names
    cols = dict(
        clickhouse.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_metrics_sum'"
        ).result_rows
    )
    assert cols["Attributes"] == "Map(LowCardinality(String), String)"
    assert cols["AggregationTemporality"] == "Int32"
    assert cols["IsMonotonic"] == "Bool"
    assert cols["TimeUnix"].startswith("DateTime64(9")


def test_migrate_is_idempotent_and_recorded(clickhouse):
    versions = {m.version for m in available_migrations()}
    assert applied_versions(clickhouse) == versions
    assert migrate(clickhouse) == []
    assert applied_versions(clickhouse) == versions


def test_rollups_sum_delta_usage_per_user_and_feature(clickhouse):
    rows = [
        ({"user.id": "u1", "feature.key": "f"}, 3.0, 1, True),
        ({"user.id": "u1", "feature.key": "f"}, 4.0, 1, True),
        ({"user.id": "u2", "feature.key": "f"}, 5.0, 1, True),
        ({"user.id": "u1", "feature.key": "f"}, 100.0, 2, True),  # cumulative: never summed
        ({"user.id": "u1", "feature.key": "f"}, 100.0, 1, False),  # non-monotonic
    ]
    clickhouse.insert(
        tables.METRICS_SUM,
        [
            ["svc", tables.USAGE_METRIC, attrs, 1_764_000_000_000_000_000, value, temp, mono]
            for attrs, value, temp, mono in rows
        ],
        column_names=[
            "ServiceName",
            "MetricName",
            "Attributes",
            "TimeUnix",
            "Value",
            "AggregationTemporality",
            "IsMonotonic",
        ],
    )
    for table in (tables.USAGE_MINUTE, tables.USAGE_DAY):
        got = dict(clickhouse.query(f"SELECT UserId, sum(Uses) FROM {table} GROUP BY UserId").result_rows)
        assert got == {"u1": 7.0, "u2": 5.0}


def test_retention_is_applied_to_existing_tables(clickhouse):
    migrate(clickhouse, SchemaOptions(raw_retention_days=7, rollup_retention_days=90))
    engines = dict(
        clickhouse.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()").result_rows
    )
    assert "toIntervalDay(7)" in engines[tables.METRICS_SUM]
    assert "toIntervalDay(90)" in engines[tables.USAGE_DAY]


@pytest.mark.parametrize("bad", [{"raw_retention_days": 0}, {"cluster": "x; DROP"}])
def test_schema_options_reject_bad_values(bad):
    with pytest.raises(SchemaError):
        SchemaOptions(**bad)


def test_connect_rejects_bad_urls_and_names(chdb_url):
    with pytest.raises(SchemaError):
        connect("mysql://x", "db")
    with pytest.raises(SchemaError):
        connect(chdb_url, "bad-name; DROP")


def test_a_single_server_keeps_its_tables_without_local_or_distributed_ones(clickhouse):
    engines = dict(
        clickhouse.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").result_rows
    )
    assert not [name for name in engines if name.endswith("_local")]
    assert "Distributed" not in engines.values()
    assert engines[tables.METRICS_SUM] == "MergeTree"
    assert engines[tables.USAGE_DAY] == "SummingMergeTree"
    assert engines[tables.PLANS] == "ReplacingMergeTree"


@pytest.mark.parametrize("url", ["ftp://ch1:8123", "ch1:8123", "http://"])
def test_listed_cluster_hosts_must_be_http_urls(url):
    with pytest.raises(SchemaError, match="invalid ClickHouse host URL"):
        migrate_deployment("http://u:p@127.0.0.1:1", "usagemeter", SchemaOptions(cluster="pair"), [url])
