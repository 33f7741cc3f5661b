"""Collector fixtures: a Collector running on free ports in an event loop of its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric, NumberDataPoint, Sum

from tests.conftest import wait_for
from usagemeter_clickhouse import Client, connect, tables
from usagemeter_collector import Collector, CollectorSettings

T = TypeVar("T")

SERVICE = "collector-test"
#: A recent whole second in ns: points must fall inside raw retention and not in the future.
T0 = (time.time_ns() // 10**9 - 3600) * 10**9


class LoopThread:
    """An asyncio loop running in a background thread, as a host program's loop would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


#: Collectors of the running test; queries wait for their spools to drain first.
_RUNNING: list[Collector] = []


class DrainedClient:
    """The test's ClickHouse client whose queries first wait for the running collectors to insert what they acked."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def query(self, *args: Any, **kwargs: Any) -> Any:
        wait_drained()
        return self._client.query(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @property
    def undrained(self) -> Client:
        """The client itself, for tests that poll while a collector keeps spooling (its own telemetry)."""
        return self._client


@pytest.fixture
def clickhouse(clickhouse: Client) -> DrainedClient:
    """The migrated test database; queries see everything the running collectors acknowledged."""
    return DrainedClient(clickhouse)


@pytest.fixture
def start_collector(
    clickhouse: DrainedClient, chdb_url: str, database: str, loop_thread: LoopThread, tmp_path: Path
) -> Iterator[Callable[..., Collector]]:
    """Start a Collector on free ports against the test's database; keyword arguments override settings."""
    started: list[Collector] = []

    def start(**overrides: Any) -> Collector:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "grpc_port": 0,
            "http_port": 0,
            "batch_max_delay_seconds": 0.05,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.5,
            "spool_dir": tmp_path / "spool",
            # Tests count rows exactly; the collector's own telemetry is switched on where it is tested.
            "self_telemetry_interval_seconds": 0,
        }
        settings = CollectorSettings(**(values | overrides))
        collector = Collector(lambda: connect(chdb_url, database), settings)
        loop_thread.run(collector.start())
        started.append(collector)
        _RUNNING.append(collector)
        return collector

    yield start
    for collector in started:
        _RUNNING.remove(collector)
        loop_thread.run(collector.stop())


def post_metrics(port: int, request: ExportMetricsServiceRequest, timeout: float = 30) -> httpx.Response:
    """POST ``request`` as protobuf to the OTLP/HTTP receiver on ``port``."""
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/metrics",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=timeout,
    )


def wait_drained(timeout: float = 30.0) -> None:
    """Wait until every running collector has inserted all it acknowledged (acks precede inserts)."""
    assert wait_for(lambda: all(c.drained for c in _RUNNING), timeout), "spool did not drain"


@pytest.fixture
def collector(start_collector: Callable[..., Collector]) -> Collector:
    return start_collector()


def usage_by_user(client: Client, feature: str | None = None) -> dict[str, Decimal]:
    """Feature totals per user from the minute rollup, once the running collectors' spools are drained."""
    wait_drained()
    query = f"SELECT UserId, sum(Quantity) FROM {tables.USAGE_MINUTE} WHERE DimensionKey = ''"
    parameters: dict[str, Any] = {}
    if feature is not None:
        query += " AND FeatureKey = {feature:String}"
        parameters["feature"] = feature
    rows = client.query(query + " GROUP BY UserId", parameters=parameters).result_rows
    return {user: uses for user, uses in rows}


def count_rows(client: Client, table: str) -> int:
    """Rows of ``table``, once the running collectors' spools are drained."""
    wait_drained()
    return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])


def attrs(**values: Any) -> list[KeyValue]:
    """OTLP attributes from keyword arguments (dots written as underscores)."""
    out = []
    for key, value in values.items():
        if isinstance(value, str):
            any_value = AnyValue(string_value=value)
        elif isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        else:
            any_value = AnyValue(double_value=value)
        out.append(KeyValue(key=key.replace("_", "."), value=any_value))
    return out


def usage_request(
    points: list[NumberDataPoint],
    temporality: int = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
    monotonic: bool = True,
    name: str = tables.USAGE_METRIC,
) -> ExportMetricsServiceRequest:
    """A request carrying one sum metric (``feature.usage`` by default) with ``points``."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(attrs(service_name=SERVICE))
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = "tests"
    metric = Metric(name=name, unit="1", sum=Sum(aggregation_temporality=temporality, is_monotonic=monotonic))
    metric.sum.data_points.extend(points)
    scope_metrics.metrics.append(metric)
    return request


def usage_point(
    user: str | None, value: float, time_ns: int, start_ns: int = 0, feature: str = "chat"
) -> NumberDataPoint:
    """A ``feature.usage`` point for ``user`` (None leaves user.id out)."""
    point = NumberDataPoint(start_time_unix_nano=start_ns or time_ns - 1, time_unix_nano=time_ns, as_double=value)
    point.attributes.extend(attrs(feature_key=feature))
    if user is not None:
        point.attributes.extend(attrs(user_id=user))
    return point
