"""``usagemeter up`` keeps serving while slow and huge-header clients attack both HTTP ports (real sockets)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from functools import partial

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource

from tests.e2e.conftest import RunningUp, start_up, stop_up
from tests.serving.hostile import MIB, PeakRss, huge_header, in_threads, rss_bytes, slow_body, slowloris

TOKEN = "e2e-ingest-token"
FEATURE = "chat_messages"
#: Short deadlines and a low connection bound, so that the attack reaches them quickly with few sockets.
LIMITS = {
    "USAGEMETER_INGEST_TOKENS": TOKEN,
    "USAGEMETER_API_HEADER_TIMEOUT_SECONDS": "2",
    "USAGEMETER_HTTP_HEADER_TIMEOUT_SECONDS": "2",
    "USAGEMETER_API_BODY_TIMEOUT_SECONDS": "2",
    "USAGEMETER_HTTP_BODY_TIMEOUT_SECONDS": "2",
    "USAGEMETER_API_MAX_CONNECTIONS": "64",
    "USAGEMETER_HTTP_MAX_CONNECTIONS": "64",
}
SLOW_PER_PORT = 100  # more than the connection bound: admitting them closes the longest idle
HUGE_PER_PORT = 4
SLOW_BODIES_PER_PORT = 10
HUGE_BYTES = 32 * MIB
#: What the attack may add to the process: far below the 256 MiB its huge headers carry.
RSS_GROWTH_BOUND = 96 * MIB


@pytest.fixture(scope="module")
def hostile_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    """``usagemeter up --demo`` with ingest tokens and the short limits above."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "data").mkdir()
    running = start_up(folder / "data", folder / "up.log", "--demo", env=LIMITS)
    yield running
    assert stop_up(running) == 0, running.output()


def export_usage(up: RunningUp, user: str, amount: int) -> MetricExportResult:
    """One export of ``amount`` uses for ``user`` through the OTel SDK's OTLP/HTTP exporter."""
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "hostile-e2e"}))
    provider.get_meter("e2e").create_counter("feature.usage").add(amount, {"user.id": user, "feature.key": FEATURE})
    data = reader.get_metrics_data()
    exporter = OTLPMetricExporter(
        endpoint=f"http://127.0.0.1:{up.http_port}/v1/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    try:
        assert data is not None
        return exporter.export(data)
    finally:
        exporter.shutdown()
        provider.shutdown()


def used(up: RunningUp, user: str) -> float:
    admin = {"Authorization": f"Bearer {up.token('root', admin=True)}"}
    response = httpx.get(f"{up.api}/quotas/{FEATURE}", params={"user_id": user}, headers=admin, timeout=10)
    assert response.status_code == 200, response.text
    return float(response.json()["used"])


def wait_used(up: RunningUp, user: str, done: Callable[[float], bool], attempts: int = 150) -> float:
    """``user``'s usage once ``done`` accepts it, or after ``attempts`` reads."""
    for _ in range(attempts):
        if done(value := used(up, user)):
            return value
        time.sleep(0.2)
    return used(up, user)


def test_the_product_keeps_serving_while_slow_and_huge_header_clients_attack(hostile_up: RunningUp) -> None:
    up = hostile_up
    ports = (up.api_port, up.http_port)
    baseline = rss_bytes(up.process.pid)
    calls = [partial(slowloris, port) for port in ports for _ in range(SLOW_PER_PORT)]
    calls += [partial(huge_header, port, HUGE_BYTES) for port in ports for _ in range(HUGE_PER_PORT)]
    bodies = [(up.api_port, "/api/v1/admin/plans"), (up.http_port, "/v1/metrics")]
    calls += [partial(slow_body, port, path) for port, path in bodies for _ in range(SLOW_BODIES_PER_PORT)]
    with PeakRss(up.process.pid) as memory:
        attack = in_threads(calls)
        health, exports = [], []
        for _ in range(10):
            health.append(httpx.get(f"{up.api}/health", timeout=10).status_code)
            exports.append(export_usage(up, "mallory-victim", 1))
            time.sleep(0.2)
        outcomes = attack()
    assert health == [200] * 10
    assert exports == [MetricExportResult.SUCCESS] * 10
    slow, rest = outcomes[: 2 * SLOW_PER_PORT], outcomes[2 * SLOW_PER_PORT :]
    huge, bodies = rest[: 2 * HUGE_PER_PORT], rest[2 * HUGE_PER_PORT :]
    assert all(o.closed_by_server for o in slow + bodies), [o for o in slow + bodies if not o.closed_by_server]
    assert {o.status for o in slow} <= {408, None}  # answered 408, or closed to admit a newer client
    assert all(o.status == 431 or (o.status is None and o.sent_bytes < HUGE_BYTES) for o in huge), huge
    assert {o.status for o in bodies} <= {401, 408, None}, bodies  # the API refuses the token-less body first
    assert memory.peak - baseline < RSS_GROWTH_BOUND, (baseline, memory.peak)
    assert wait_used(up, "mallory-victim", lambda value: value >= 10) == 10  # every acknowledged export is stored
    assert "Exception in ASGI application" not in up.output()


def test_the_demo_sends_with_the_ingest_token(hostile_up: RunningUp) -> None:
    assert wait_used(hostile_up, "alice", lambda value: value > 0) > 0


def test_collector_telemetry_needs_the_ingest_token(hostile_up: RunningUp) -> None:
    url = f"http://127.0.0.1:{hostile_up.http_port}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert scraped.status_code == 200 and "usagemeter_collector_spool_bytes" in scraped.text
    refused = httpx.post(
        f"http://127.0.0.1:{hostile_up.http_port}/v1/metrics",
        content=b"",
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert refused.status_code == 401


def test_grpc_metadata_over_the_bound_is_refused_and_normal_exports_succeed(hostile_up: RunningUp) -> None:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    auth = ("authorization", f"Bearer {TOKEN}")
    with grpc.insecure_channel(f"127.0.0.1:{hostile_up.grpc_port}") as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(request, metadata=[auth, ("x-pad", "p" * 64 * 1024)], timeout=10)
        assert refused.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL)
        stub.Export(request, metadata=[auth], timeout=10)


def test_a_trailing_slash_is_not_redirected_to_the_host_a_client_names(hostile_up: RunningUp) -> None:
    with socket.create_connection(("127.0.0.1", hostile_up.api_port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head = response.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 404")
    assert b"location:" not in head


def test_a_silent_connection_is_closed_with_408(hostile_up: RunningUp) -> None:
    for port in (hostile_up.api_port, hostile_up.http_port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 408"), response
