"""The host is never disturbed: no exceptions, no waiting on the network, safe repeated setup."""

from __future__ import annotations

import logging
import threading

import pytest

import usagemeter_instrumentation as usagemeter
from tests.conftest import free_port
from tests.instrumentation.receivers import GrpcReceiver, wait_until


def test_unreachable_endpoint_never_raises() -> None:
    usagemeter.configure(
        "host", f"http://127.0.0.1:{free_port()}", export_interval_millis=50, export_timeout_millis=300
    )
    for index in range(1_000):
        usagemeter.track_feature_use("chat_messages", f"user-{index % 10}", model="m")

    usagemeter.force_flush(500)
    usagemeter.shutdown(timeout_millis=1_000)


def test_tracking_does_not_wait_for_a_stalled_export(grpc_receiver: GrpcReceiver) -> None:
    recorder = grpc_receiver.recorder
    recorder.hold.clear()
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=50, export_timeout_millis=20_000)
    usagemeter.track_feature_use("chat_messages", "alice")
    assert recorder.arrived.wait(10)

    # The export is held inside the receiver; these calls must complete regardless.
    for _ in range(2_000):
        usagemeter.track_feature_use("chat_messages", "alice", model="m")
    assert recorder.metrics == []

    recorder.hold.set()
    usagemeter.shutdown()
    assert recorder.usage_totals() == {("alice", "chat_messages"): 2_001}


def test_tracking_before_configure_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.track_feature_use("chat_messages", "alice")
        usagemeter.track_feature_use("chat_messages", "bob", model="m")

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not configured" in warnings[0].getMessage()
    assert usagemeter.force_flush() is False


def test_bad_input_is_dropped_or_normalised_without_raising(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=600_000)
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.track_feature_use("", "alice")
        usagemeter.track_feature_use("chat_messages", "")
        usagemeter.track_feature_use(None, None)  # type: ignore[arg-type]
        usagemeter.track_feature_use("chat_messages", 42)  # type: ignore[arg-type]
        usagemeter.track_feature_use("chat_messages", "alice", payload=object())
    usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {("42", "chat_messages"): 1, ("alice", "chat_messages"): 1}
    assert len([r for r in caplog.records if "without feature key or user id" in r.getMessage()]) == 1


def test_second_configure_keeps_the_running_pipeline(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    other = GrpcReceiver()
    other.start()
    try:
        usagemeter.configure("first", grpc_receiver.endpoint, export_interval_millis=600_000)
        with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
            usagemeter.configure("second", other.endpoint, export_interval_millis=600_000)
        usagemeter.track_feature_use("chat_messages", "alice")
        usagemeter.shutdown()

        assert "already configured" in caplog.text
        assert grpc_receiver.recorder.usage_totals() == {("alice", "chat_messages"): 1}
        assert other.recorder.metrics == []

        usagemeter.configure("second", other.endpoint, export_interval_millis=600_000)
        usagemeter.track_feature_use("chat_messages", "bob")
        usagemeter.shutdown()
        assert other.recorder.usage_totals() == {("bob", "chat_messages"): 1}
    finally:
        other.stop()


def test_concurrent_tracking_from_many_threads_is_exact(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=20)

    def work(user: str) -> None:
        for _ in range(500):
            usagemeter.track_feature_use("chat_messages", user)

    threads = [threading.Thread(target=work, args=(f"user-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usagemeter.shutdown()

    assert wait_until(
        lambda: grpc_receiver.recorder.usage_totals() == {(f"user-{n}", "chat_messages"): 500 for n in range(8)}
    )


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text form")


def test_errors_while_recording_are_logged_once_per_kind(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=600_000)
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        for _ in range(3):
            usagemeter.track_feature_use(_Unprintable(), "alice")  # type: ignore[arg-type]
        usagemeter.track_feature_use("chat_messages", "alice")
    usagemeter.shutdown()

    assert len([r for r in caplog.records if "could not record" in r.getMessage()]) == 1
    assert grpc_receiver.recorder.usage_totals() == {("alice", "chat_messages"): 1}
