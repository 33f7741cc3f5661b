from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.server.processes import server_env, usagemeter
from usagemeter_clickhouse import (
    SchemaError,
    SchemaOptions,
    applied_versions,
    available_migrations,
    connect,
    dimension_attributes,
    migrate,
    migrate_deployment,
    tables,
)
from usagemeter_clickhouse.settings import ClickHouseSettings, StorageSettings, settings_problem


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
    for table in (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST):
        query = f"SELECT UserId, sum(Quantity) FROM {table} WHERE DimensionKey = '' GROUP BY UserId"
        assert dict(clickhouse.query(query).result_rows) == {"u1": 7, "u2": 5}


def _insert_usage(client, points: list[tuple[dict[str, str], float]]) -> None:
    client.insert(
        tables.METRICS_SUM,
        [["svc", tables.USAGE_METRIC, attrs, 1_764_000_000_000_000_000, value, 1, True] for attrs, value in points],
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


def _slices(client, table: str) -> dict[tuple[str, str], Decimal]:
    query = f"SELECT DimensionKey, DimensionValue, sum(Quantity) FROM {table} GROUP BY 1, 2"
    return {(key, value): total for key, value, total in client.query(query).result_rows}


def test_quantities_are_the_values_decimal_digits_summed_exactly(clickhouse):
    usage = {"user.id": "u", "feature.key": "f"}
    _insert_usage(clickhouse, [(usage, 0.1), (usage, 0.2), (usage, 123456789012345.0), (usage, 0.7), (usage, 1.25e-7)])
    for table in (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST):
        assert _slices(clickhouse, table) == {("", ""): Decimal("123456789012346.0")}, table


def test_a_point_adds_to_its_total_and_to_each_allow_listed_attribute_it_carries(chdb_url, database):
    client = connect(chdb_url, database, create_database=True)
    try:
        migrate(client, SchemaOptions(dimension_attributes=("model", "region")))
        base = {"user.id": "u", "feature.key": "f"}
        _insert_usage(
            client,
            [
                (base | {"model": "gpt-4o", "region": "eu", "team": "a"}, 2.5),
                (base | {"model": "mini"}, 1.0),
                (base | {"team": "b"}, 4.0),
            ],
        )
        expected = {
            ("", ""): Decimal("7.5"),
            ("model", "gpt-4o"): Decimal("2.5"),
            ("model", "mini"): Decimal("1"),
            ("region", "eu"): Decimal("2.5"),
        }
        for table in (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST):
            assert _slices(client, table) == expected, table
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()


def test_migrate_writes_the_allow_list_and_retires_names_no_longer_listed_without_deleting_rows(chdb_url, database):
    client = connect(chdb_url, database, create_database=True)
    try:
        migrate(client, SchemaOptions(dimension_attributes=("region", "model")))
        assert dimension_attributes(client) == ["model", "region"]
        first = client.query(f"SELECT max(Version) FROM {tables.USAGE_DIMENSIONS}").result_rows[0][0]
        migrate(client, SchemaOptions(dimension_attributes=("region", "model")))
        assert client.query(f"SELECT count() FROM {tables.USAGE_DIMENSIONS}").result_rows[0][0] == 2, "unchanged"
        migrate(client, SchemaOptions(dimension_attributes=("region", "plan.tier")))
        assert dimension_attributes(client) == ["plan.tier", "region"]
        rows = client.query(
            f"SELECT Attribute, Active, Version FROM {tables.USAGE_DIMENSIONS} ORDER BY Version"
        ).result_rows
        assert ("model", False) in [(a, active) for a, active, version in rows if version > first]
        assert ("region", True, first) in rows, "a name that stays listed keeps its row"
        usage = {"user.id": "u", "feature.key": "f", "model": "gpt-4o", "plan.tier": "pro"}
        _insert_usage(client, [(usage, 3.0)])
        assert set(_slices(client, tables.USAGE_DAY)) == {("", ""), ("plan.tier", "pro")}
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (("user.id",), "identifies the usage itself"),
        (("feature.key",), "identifies the usage itself"),
        (("model", "model"), "listed twice"),
        (("a b",), "1 to 64 characters"),
        (("x" * 65,), "1 to 64 characters"),
        (("",), "1 to 64 characters"),
        (tuple(f"d{n}" for n in range(17)), "at most 16"),
    ],
)
def test_a_bad_allow_list_is_refused_naming_the_problem(names, problem):
    with pytest.raises(SchemaError, match=problem):
        SchemaOptions(dimension_attributes=names)


def test_the_allow_list_setting_is_read_comma_separated_and_checked(monkeypatch):
    monkeypatch.setenv("USAGEMETER_DIMENSION_ATTRIBUTES", " model, region ,,")
    assert ClickHouseSettings().schema_options().dimension_attributes == ("model", "region")
    assert StorageSettings().dimension_attributes == ("model", "region")
    monkeypatch.setenv("USAGEMETER_DIMENSION_ATTRIBUTES", "model,user.id")
    with pytest.raises(ValidationError) as refused:
        ClickHouseSettings()
    assert "USAGEMETER_DIMENSION_ATTRIBUTES" in settings_problem(refused.value)
    assert "'user.id' identifies the usage itself" in settings_problem(refused.value)


def test_retention_is_applied_to_existing_tables(clickhouse):
    migrate(clickhouse, SchemaOptions(raw_retention_days=7, rollup_retention_days=90))
    engines = dict(
        clickhouse.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()").result_rows
    )
    assert "toIntervalDay(7)" in engines[tables.METRICS_SUM]
    assert "toIntervalDay(90)" in engines[tables.USAGE_DAY]
    assert "toIntervalDay(90)" in engines[tables.USAGE_MINUTE]
    assert "toIntervalDay(32)" in engines[tables.USAGE_INGEST], "the ingest rollup keeps its fixed 32 days"
    assert " TTL " not in engines[tables.USAGE_MONTH], "lifetime totals are kept for good"


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


def test_migrate_refuses_a_bad_allow_list_in_one_line_naming_the_variable(tmp_path):
    env = server_env(f"chdb://{tmp_path / 'engine'}", "usagemeter", dimension_attributes="model,feature.key")
    result = usagemeter("migrate", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "usagemeter migrate: invalid settings: USAGEMETER_DIMENSION_ATTRIBUTES Value error, "
        "dimension attribute 'feature.key' identifies the usage itself and cannot slice it"
    )
