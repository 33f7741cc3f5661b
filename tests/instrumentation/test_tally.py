"""Counts stay exact through failed exports, and pending series are bounded."""

from __future__ import annotations

import logging

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver, wait_until
from usagemeter_instrumentation import _api


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_uses_of_refused_exports_are_delivered_once_the_receiver_accepts_them(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    receiver.recorder.reject_metrics = 2
    usagemeter.configure("host", receiver.endpoint, protocol=protocol, export_interval_millis=600_000)
    for index in range(300):
        usagemeter.track_feature_use("chat_messages", f"user-{index % 30}")
    assert usagemeter.force_flush(5_000) is False
    usagemeter.track_feature_use("chat_messages", "late")

    assert wait_until(lambda: usagemeter.force_flush(5_000))
    assert receiver.recorder.rejected == 2
    expected = {(f"user-{n}", "chat_messages"): 10 for n in range(30)} | {("late", "chat_messages"): 1}
    assert receiver.recorder.usage_totals() == expected


def test_uses_beyond_the_pending_bound_are_dropped_with_a_warning(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=600_000, max_pending_series=5)
    for index in range(8):
        usagemeter.track_feature_use("chat_messages", f"user-{index}")
        usagemeter.track_feature_use("chat_messages", f"user-{index}")
    usage = _api._pipeline.usage  # type: ignore[union-attr]
    assert usage.dropped == 6
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {(f"user-{n}", "chat_messages"): 2 for n in range(5)}
    dropped = grpc_receiver.recorder.metric_totals("usagemeter.instrumentation.dropped")
    assert dropped == {(("metric.name", "feature.usage"),): 6}


def test_conversions_are_counted_with_and_without_a_user(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("site", grpc_receiver.endpoint, export_interval_millis=100)
    usagemeter.track_conversion("signup", "alice")
    usagemeter.track_conversion("lead")
    usagemeter.track_conversion("lead")
    usagemeter.track_conversion("upgrade", "bob", plan="pro")
    usagemeter.track_conversion("")

    expected = {
        (("conversion.name", "signup"), ("user.id", "alice")): 1,
        (("conversion.name", "lead"),): 2,
        (("conversion.name", "upgrade"), ("plan", "pro"), ("user.id", "bob")): 1,
    }
    assert wait_until(lambda: grpc_receiver.recorder.metric_totals("conversion.count") == expected)
    points = [p for p in grpc_receiver.recorder.sum_points() if p.metric == "conversion.count"]
    assert all(p.monotonic for p in points)


def test_configure_with_the_same_settings_is_a_silent_no_op(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=600_000, span_sampling={"a": 1.0})
    pipeline = _api._pipeline
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=600_000, span_sampling={"a": 1.0})
    assert _api._pipeline is pipeline
    assert "already configured" not in caplog.text
