"""End to end: usage sent through lost answers reaches ClickHouse exactly once through the real collector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

import usagemeter_instrumentation as usagemeter
from tests.collector import conftest as collector_fixtures
from tests.collector.conftest import DrainedClient, usage_by_user
from tests.instrumentation.lossy_proxy import AnswerDroppingProxy
from tests.instrumentation.receivers import wait_until
from usagemeter_collector import Collector

# The collector tests' fixtures: a collector on free ports over the test's database on the embedded engine.
clickhouse = collector_fixtures.clickhouse
loop_thread = collector_fixtures.loop_thread
start_collector = collector_fixtures.start_collector


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_usage_through_dropped_answers_is_stored_exactly_once(
    protocol: str, start_collector: Callable[..., Collector], clickhouse: DrainedClient
) -> None:
    collector = start_collector()
    grpc = protocol == "grpc"
    proxy = AnswerDroppingProxy(collector.grpc_port if grpc else collector.http_port, http2=grpc)
    proxy.start()
    # The OTel HTTP client sends a request once more at once, on a new connection, after a connection error.
    drops_per_export = 1 if grpc else 2
    expected: Counter[str] = Counter()
    try:
        usagemeter.configure(
            "e2e-host", proxy.endpoint, protocol=protocol, export_interval_millis=600_000, export_timeout_millis=500
        )
        for round_ in range(3):
            for index in range(10):
                for _ in range(round_ + 1):
                    usagemeter.track_feature_use("chat", f"user-{index}")
                expected[f"user-{index}"] += round_ + 1
            proxy.drop_answers(drops_per_export)
            assert usagemeter.force_flush(5_000) is False  # stored by the collector, answer dropped
            for index in range(5, 15):
                usagemeter.track_feature_use("chat", f"user-{index}")  # newer counts meanwhile
                expected[f"user-{index}"] += 1
            assert wait_until(lambda: usagemeter.force_flush(5_000))
    finally:
        usagemeter.shutdown()
        proxy.stop()

    assert proxy.dropped == 3 * drops_per_export
    assert collector.telemetry.requests_duplicate >= 3
    assert usage_by_user(clickhouse, "chat") == {user: float(uses) for user, uses in expected.items()}
