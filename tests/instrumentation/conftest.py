"""Fixtures: real OTLP receivers on 127.0.0.1 and a clean instrumentation state per test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import usagemeter_instrumentation
from tests.conftest import free_port
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver, wait_until


@pytest.fixture(autouse=True)
def clean_instrumentation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variables nor dimension allow-list from the outside, and no pipeline left running after the test."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "USAGEMETER_DIMENSION_ATTRIBUTES":
            monkeypatch.delenv(name)
    yield
    usagemeter_instrumentation.shutdown(timeout_millis=2_000)


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


REDIS_SERVER = Path("/usr/bin/redis-server")


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server on 127.0.0.1 with a temporary directory and no persistence."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is missing: install the Debian package redis-server")
    import redis

    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    arguments += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen([str(REDIS_SERVER), *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        assert wait_until(lambda: _answers(client)), "redis-server did not start"
        yield port
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def _answers(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
