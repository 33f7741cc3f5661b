"""Fixtures: real OTLP receivers on 127.0.0.1 and a clean instrumentation state per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import usagemeter_instrumentation
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver


@pytest.fixture(autouse=True)
def clean_instrumentation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variables from the outside, and no pipeline left running after the test."""
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


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()
