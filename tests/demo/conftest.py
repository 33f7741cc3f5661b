"""Fixtures: a real OTLP/gRPC receiver and no instrumentation pipeline left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import usagemeter_instrumentation
from tests.instrumentation.receivers import GrpcReceiver


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
