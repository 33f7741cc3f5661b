"""The limits in the API's and the collector's settings are the ones their servers enforce (real sockets)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from pydantic import SecretStr

from tests.conftest import free_port
from tests.serving.conftest import read_all, status_of
from usagemeter._serving import api_server, limited_collector, start_server, stop_server
from usagemeter_api import ApiSettings
from usagemeter_clickhouse import connect
from usagemeter_collector import CollectorSettings

BOUND = 2048  # well below the 16 KiB default, so a 3 KiB header tells the setting was applied
HEADER = "X-Pad: " + "p" * 3 * 1024


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def head_status(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n{HEADER}\r\nConnection: close\r\n\r\n".encode())
        return status_of(read_all(sock))


def test_the_api_server_enforces_the_api_header_bound(loop):
    settings = ApiSettings(jwt_secret=SecretStr("s" * 32), api_port=free_port(), api_max_header_bytes=BOUND)
    server = api_server(FastAPI(), settings, "warning")

    async def probe() -> int:
        task = await start_server(server)
        try:
            return await asyncio.to_thread(head_status, settings.api_port)
        finally:
            await stop_server(server, task)

    assert loop.run_until_complete(probe()) == 431


def test_the_collector_enforces_its_header_bound_on_http_and_grpc(loop, clickhouse, chdb_url, database, tmp_path: Path):
    settings = CollectorSettings(
        host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        spool_dir=tmp_path / "spool",
        max_header_bytes=BOUND,
        self_telemetry_interval_seconds=0,
    )
    collector = limited_collector(lambda: connect(chdb_url, database), settings)

    def grpc_code() -> grpc.StatusCode:
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            try:
                stub.Export(metrics_service_pb2.ExportMetricsServiceRequest(), metadata=[("x-pad", "p" * 3 * 1024)])
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

    async def probe() -> tuple[int, grpc.StatusCode]:
        await collector.start()
        try:
            return await asyncio.to_thread(head_status, collector.http_port), await asyncio.to_thread(grpc_code)
        finally:
            await collector.stop()

    http, rpc = loop.run_until_complete(probe())
    assert http == 431
    assert rpc != grpc.StatusCode.OK
