"""The production layout on one ClickHouse server: migrate, a collector and an API, each a process of its own."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import wait_for
from tests.server.processes import run_migrate, server_env, start_api, start_collector, token
from tests.server.senders import FEATURE, send_usage


def test_usage_reaches_the_api_through_a_collector_on_a_server(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    env = server_env(clickhouse_server.url(), database)
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env, tmp_path)
    try:
        send_usage(collector.grpc_endpoint, {"ana": 3, "ben": 5})
        collector.wait_drained()
        headers = {"authorization": f"Bearer {token('ana')}"}

        def used() -> float | None:
            response = httpx.get(f"{api.base}/quotas/{FEATURE}", headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()["used"] if response.json()["used"] == 3 else None

        # The API's usage view takes in new rows within its refresh.
        assert wait_for(used) == 3
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()
