"""The production layout on one ClickHouse server: migrate, a collector and an API, each a process of its own."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import wait_for
from tests.server.processes import INGEST_TOKEN, JWT_SECRET, run_migrate, server_env, start_api, start_collector
from usagemeter_api.auth import mint_token

FEATURE = "ai_content_generation"


def send_usage(endpoint: str, uses: dict[str, int]) -> None:
    """Count ``uses`` per user through the real OTel SDK over gRPC, then flush."""
    exporter = OTLPMetricExporter(
        endpoint=f"http://{endpoint}",
        insecure=True,
        headers={"authorization": f"Bearer {INGEST_TOKEN}"},
        preferred_temporality={Counter: AggregationTemporality.DELTA},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "backend"}))
    counter = provider.get_meter("server-tests").create_counter("feature.usage")
    for user, amount in uses.items():
        counter.add(amount, {"user.id": user, "feature.key": FEATURE})
    assert reader.force_flush(timeout_millis=30_000)
    provider.shutdown()


def user_token(user: str) -> str:
    return mint_token(JWT_SECRET, user, admin=False, ttl_seconds=3600, audience=None, issuer=None)


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
        headers = {"authorization": f"Bearer {user_token('ana')}"}

        def used() -> float | None:
            response = httpx.get(f"{api.base}/quotas/{FEATURE}", headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()["used"] if response.json()["used"] == 3 else None

        # The API's usage view takes in new rows within its refresh.
        assert wait_for(used) == 3
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()
