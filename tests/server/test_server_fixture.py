"""The test server is a real ClickHouse server: migrations, protobuf-free inserts and a clean restart."""

from __future__ import annotations

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import ServerFactory
from usagemeter_clickhouse import Client, connect, migrate


def test_the_schema_migrates_on_the_server(server_clickhouse: Client) -> None:
    version = server_clickhouse.command("SELECT version()")
    assert str(version).startswith("26.")
    tables = server_clickhouse.query("SELECT count() FROM system.tables WHERE database = currentDatabase()")
    assert tables.result_rows[0][0] > 10


def test_data_survives_a_clean_stop_and_a_kill(server_factory: ServerFactory) -> None:
    server = server_factory.server()
    client = connect(server.url(), "keep", create_database=True)
    migrate(client)
    client.command("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
    client.command("INSERT INTO t VALUES (1), (2)")
    client.close()
    server.stop()
    assert not server.ping()
    server.start()
    server.kill()
    server.start()
    assert server.query("SELECT sum(x) FROM keep.t").strip() == "3"


def test_two_servers_form_a_sharded_cluster(clickhouse_cluster: list[ClickHouseServer]) -> None:
    first = clickhouse_cluster[0]
    answer = first.query("SELECT count() FROM system.clusters WHERE cluster = 'usagemeter_pair'")
    assert answer.strip() == "2"
