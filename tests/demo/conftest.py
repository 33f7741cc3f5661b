"""Fixtures: a real OTLP/gRPC receiver, a real redis-server, and no instrumentation pipeline left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import usagemeter_instrumentation
from tests.instrumentation.conftest import redis_port
from tests.instrumentation.receivers import GrpcReceiver

__all__ = ["clean_instrumentation", "grpc_receiver", "redis_port"]


@pytest.fixture(autouse=True)
def clean_instrumentation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    yield
    usagemeter_instrumentation.shutdown(timeout_millis=2_000)


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver()
    receiver.start()
    yield receiver
    receiver.stop()
