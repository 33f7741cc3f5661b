"""``usagemeter collector`` against a real ClickHouse server: outages at start, the format schema, health, stopping.

Each collector, API and ClickHouse server is a process of its own, as in production; usage is sent
through the real OTel SDK and totals are read back from the server.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.clickhouse_server import ClickHouseServer
from tests.collector.conftest import wait_for
from tests.conftest import ServerFactory
from tests.server.processes import (
    INGEST_TOKEN,
    Api,
    Collector,
    run_migrate,
    server_env,
    start_api,
    start_collector,
    token,
)
from tests.server.senders import FEATURE, send_usage
from usagemeter_clickhouse import tables
from usagemeter_collector._drain.landing import SCHEMA_FILE, bundled_schema_path

USES = {"ana": 3, "ben": 5, "cho": 11}
#: Retries stay short so that a returning server is used within a second or two.
QUICK_RETRIES = {"retry_initial_seconds": "0.1", "retry_max_seconds": "1"}


def usage_totals(server: ClickHouseServer, database: str) -> dict[str, int]:
    """Metered uses per user of ``FEATURE``, as the server's minute rollup holds them."""
    answer = server.query(
        f"SELECT UserId, sum(Quantity) FROM `{database}`.{tables.USAGE_MINUTE} "
        f"WHERE FeatureKey = '{FEATURE}' AND DimensionKey = '' GROUP BY UserId ORDER BY UserId"
    )
    return {user: int(float(total)) for user, total in (line.split("\t") for line in answer.splitlines())}


def metric(collector: Collector, name: str) -> float:
    """One unlabelled gauge or counter of the collector's /metrics."""
    prefix = f"usagemeter_collector_{name} "
    (line,) = [line for line in collector.metrics().splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def collector_health(collector: Collector, token: str | None = None) -> dict[str, Any]:
    """The collector's own GET /health: reason codes without a token, with the error texts with one."""
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    response = httpx.get(f"{collector.http_endpoint}/health", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def collector_services(api: Api) -> list[dict[str, Any]]:
    """The collector entries of the API's /health/details, read with an admin token."""
    response = api.get("/health/details", token("operator", admin=True))
    assert response.status_code == 200, response.text
    return [service for service in response.json()["services"] if service["name"].startswith("collector")]


def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """The first truthy result of ``check`` within ``timeout`` seconds."""
    found = wait_for(check, timeout)
    assert found, f"never saw {what}"
    return found


def spooled_segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool").glob("*.seg"))


def test_a_collector_started_while_clickhouse_is_down_acknowledges_spools_and_drains_when_it_returns(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), database, **QUICK_RETRIES)
    run_migrate(env)
    server.stop()

    collector = start_collector(env, tmp_path / "collector")
    try:
        send_usage(collector.grpc_endpoint, USES)  # the SDK's export answered OK: durable in the spool
        assert metric(collector, "spool_bytes") > 0
        assert metric(collector, "insert_failing") == 1
        assert collector_health(collector)["insert_failing"] is True
        assert "ClickHouse unreachable" in collector.output()

        server.start()
        collector.wait_drained()
        assert usage_totals(server, database) == USES
        assert metric(collector, "insert_failing") == 0
    finally:
        assert collector.stop() == 0, collector.output()


def test_the_default_format_schema_against_a_server_is_found_by_name_in_the_servers_schema_directory(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    # This test server looks up schema names in its own directory, where its start put the shipped file.
    assert (clickhouse_server.directory / SCHEMA_FILE).read_bytes() == bundled_schema_path().read_bytes()
    env = server_env(clickhouse_server.url(), database)
    assert "USAGEMETER_CLICKHOUSE_FORMAT_SCHEMA" not in env
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    try:
        send_usage(collector.grpc_endpoint, USES)
        collector.wait_drained()
        assert usage_totals(clickhouse_server, database) == USES
    finally:
        assert collector.stop() == 0, collector.output()


def test_a_missing_format_schema_keeps_the_data_spooled_shows_the_error_and_drains_once_the_file_is_there(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    # Had the collector sent the shipped file's absolute path, this server would still find it.
    (server.directory / SCHEMA_FILE).unlink()
    env = server_env(server.url(), database, self_telemetry_interval_seconds="2", **QUICK_RETRIES)
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env, tmp_path)
    try:
        send_usage(collector.grpc_endpoint, USES)
        error = eventually(lambda: collector_health(collector, INGEST_TOKEN)["insert_last_error"], "the insert error")
        assert "otlp_metrics.proto" in error and "Code: 434" in error
        assert metric(collector, "insert_failing") == 1
        assert 'usagemeter_collector_insert_last_error{error="Code: 434.' in collector.metrics()
        assert "CANNOT_PARSE_PROTOBUF_SCHEMA" in collector.output()
        # Its self-telemetry is stuck behind the usage in the spool; the status row it stores directly is not.
        (service,) = eventually(
            lambda: [s for s in collector_services(api) if "inserts failing" in s["detail"]], "a failing collector"
        )
        assert service["status"] == "down" and "otlp_metrics.proto" in service["detail"], service
        assert spooled_segments(tmp_path / "collector")

        shutil.copy(bundled_schema_path(), server.directory / SCHEMA_FILE)
        collector.wait_drained()
        assert usage_totals(server, database) == USES
        (service,) = eventually(
            lambda: [s for s in collector_services(api) if s["status"] == "healthy"], "the collector healthy again"
        )
        assert "inserts failing" not in service["detail"]
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()


def test_a_collector_refused_by_clickhouse_shows_its_error_text_to_an_api_with_its_token_and_only_the_code_without(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    env = server_env(clickhouse_server.url(), database)
    run_migrate(env)
    refused = server_env(
        clickhouse_server.url(password="not-the-password"), database, drain_timeout_seconds="1", **QUICK_RETRIES
    )
    collector = start_collector(refused, tmp_path / "collector")
    asking = env | {"USAGEMETER_COLLECTOR_URLS": collector.http_endpoint}
    api = start_api(asking | {"USAGEMETER_COLLECTOR_TOKEN": INGEST_TOKEN}, tmp_path)
    tokenless = start_api(asking, tmp_path, name="tokenless-api")
    try:
        send_usage(collector.grpc_endpoint, USES)
        (service,) = eventually(
            lambda: [s for s in collector_services(api) if "inserts failing" in s["detail"]], "a refused collector"
        )
        assert service["name"] == f"collector {collector_health(collector)['instance']}"
        assert service["status"] == "down"
        assert "inserts failing: cannot connect to ClickHouse: Code: 516" in service["detail"], service
        assert "Authentication failed" in service["detail"]

        (coded,) = [s for s in collector_services(tokenless) if s["name"] == service["name"]]
        assert coded["status"] == "down"
        assert coded["detail"].startswith("inserts failing: AUTHENTICATION_FAILED; oldest unsent data"), coded
        public = httpx.get(f"{collector.http_endpoint}/health", timeout=5).text
        for private in ("Authentication failed", "Code: 516", "usagemeter", database):
            assert private not in coded["detail"] and private not in public, (coded, public)
        assert usage_totals(clickhouse_server, database) == {}
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()
        assert tokenless.stop() == 0, tokenless.output()


def test_a_collector_that_does_not_answer_its_health_check_shows_down(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    env = server_env(clickhouse_server.url(), database)
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env | {"USAGEMETER_COLLECTOR_URLS": collector.http_endpoint}, tmp_path)
    try:
        assert collector.stop() == 0, collector.output()
        services = {service["name"]: service for service in collector_services(api)}
        service = services[f"collector at {collector.http_endpoint}"]
        assert service["status"] == "down"
        assert service["detail"].startswith("health check unanswered:"), service
    finally:
        assert api.stop() == 0, api.output()


def test_a_collector_that_stops_answering_shows_as_its_own_instance_down_and_not_again_as_its_url(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    env = server_env(clickhouse_server.url(), database, self_telemetry_interval_seconds="2")
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env | {"USAGEMETER_COLLECTOR_URLS": collector.http_endpoint}, tmp_path)
    try:
        instance = collector_health(collector)["instance"]
        # Its self-reports are stored, and its health check has named it once.
        (first,) = eventually(
            lambda: [s for s in collector_services(api) if s["status"] == "healthy"], "the collector's first report"
        )
        assert first["name"] == f"collector {instance}"
        assert collector.stop() == 0, collector.output()

        (stopped,) = collector_services(api)
        assert stopped["name"] == f"collector {instance}", stopped
        assert stopped["status"] == "down"
        assert "health check unanswered:" in stopped["detail"], stopped

        collector.start()
        (back,) = eventually(
            lambda: [s for s in collector_services(api) if s["status"] == "healthy"], "the collector answering again"
        )
        assert back["name"] == f"collector {instance}"
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()


def test_a_restarted_collector_reports_as_the_same_instance_and_leaves_no_phantom(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    env = server_env(clickhouse_server.url(), database, self_telemetry_interval_seconds="2")
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env, tmp_path)
    try:
        (first,) = eventually(lambda: collector_services(api), "the collector's first report")
        instance = collector_health(collector)["instance"]
        assert first["name"] == f"collector {instance}"
        assert collector.stop() == 0, collector.output()
        collector.start()
        assert collector_health(collector)["instance"] == instance
        send_usage(collector.grpc_endpoint, USES)
        collector.wait_drained()
        assert usage_totals(clickhouse_server, database) == USES
        assert [service["name"] for service in collector_services(api)] == [f"collector {instance}"]
        reporters = clickhouse_server.query(
            f"SELECT uniqExact(ResourceAttributes['service.instance.id']) FROM `{database}`.{tables.METRICS_GAUGE} "
            "WHERE ServiceName = 'usagemeter-collector'"
        )
        assert reporters.strip() == "1"
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()


def test_sigterm_inserts_the_spooled_backlog_before_exiting(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    # Retries far apart: only the stop's drain can send the backlog in time.
    env = server_env(server.url(), database, retry_initial_seconds="30", retry_max_seconds="30")
    run_migrate(env)
    server.stop()
    collector = start_collector(env, tmp_path / "collector")
    send_usage(collector.grpc_endpoint, USES)
    assert metric(collector, "spool_bytes") > 0
    server.start()

    assert collector.stop() == 0, collector.output()
    assert spooled_segments(tmp_path / "collector") == []
    assert usage_totals(server, database) == USES
    assert "its spool empty" in collector.output()


def test_sigterm_with_clickhouse_down_exits_at_the_drain_deadline_and_a_restart_sends_the_rest(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), database, drain_timeout_seconds="2", **QUICK_RETRIES)
    run_migrate(env)
    server.stop()
    collector = start_collector(env, tmp_path / "collector")
    send_usage(collector.grpc_endpoint, USES)

    # A collector still draining past its deadline (+ the receivers' grace) would be killed here: not 0.
    assert collector.stop(timeout=2 + 15) == 0, collector.output()
    assert spooled_segments(tmp_path / "collector")
    assert "not yet inserted; the next start sends them" in collector.output()

    server.start()
    collector.start()
    collector.wait_drained()
    assert usage_totals(server, database) == USES
    assert collector.stop() == 0, collector.output()
