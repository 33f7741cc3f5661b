"""Feature usage reaches a real OTLP receiver as exact per-user delta sums."""

from __future__ import annotations

from collections import Counter

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver, wait_until

# One interval per flush: periodic exports would split the sums across requests, which is fine but slower.
LONG_INTERVAL = 600_000


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> GrpcReceiver | HttpReceiver:
    name = "grpc_receiver" if request.param == "grpc" else "http_receiver"
    return request.getfixturevalue(name)


def _protocol(receiver: GrpcReceiver | HttpReceiver) -> str:
    return "grpc" if isinstance(receiver, GrpcReceiver) else "http/protobuf"


def test_ten_thousand_users_in_one_interval_are_counted_exactly(receiver: GrpcReceiver | HttpReceiver) -> None:
    usagemeter.configure(
        "test-host", receiver.endpoint, protocol=_protocol(receiver), export_interval_millis=LONG_INTERVAL
    )
    expected: Counter[tuple[str, str]] = Counter()
    for index in range(10_000):
        user = f"user-{index}"
        for _ in range(index % 3 + 1):
            usagemeter.track_feature_use("chat_messages", user)
            expected[(user, "chat_messages")] += 1
        if index % 4 == 0:
            usagemeter.track_feature_use("document_export", user)
            expected[(user, "document_export")] += 1

    assert usagemeter.force_flush(10_000)

    assert wait_until(lambda: receiver.recorder.usage_totals() == expected)
    points = list(receiver.recorder.sum_points())
    assert not [p for p in points if "otel.metric.overflow" in p.attributes]
    usage = [p for p in points if p.metric == "feature.usage"]
    assert {p.service_name for p in usage} == {"test-host"}
    assert all(set(p.attributes) == {"user.id", "feature.key"} for p in usage)


def test_successive_intervals_carry_only_their_own_uses(receiver: GrpcReceiver | HttpReceiver) -> None:
    usagemeter.configure(
        "test-host", receiver.endpoint, protocol=_protocol(receiver), export_interval_millis=LONG_INTERVAL
    )
    for _ in range(3):
        usagemeter.track_feature_use("ai_content_generation", "alice")
    usagemeter.force_flush(10_000)
    usagemeter.track_feature_use("ai_content_generation", "alice")
    usagemeter.track_feature_use("ai_content_generation", "bob")
    usagemeter.shutdown()

    values = [(p.attributes["user.id"], p.value) for p in receiver.recorder.sum_points() if p.metric == "feature.usage"]
    assert sorted(values) == [("alice", 1), ("alice", 3), ("bob", 1)]


def test_usage_is_exported_periodically_without_flushing(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("test-host", grpc_receiver.endpoint, export_interval_millis=100)
    usagemeter.track_feature_use("chat_messages", "carol")

    assert wait_until(lambda: grpc_receiver.recorder.usage_totals() == {("carol", "chat_messages"): 1})


def test_series_beyond_the_cardinality_limit_wait_for_the_next_export(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure(
        "test-host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL, cardinality_limit=50
    )
    for index in range(60):
        usagemeter.track_feature_use("chat_messages", f"user-{index}")
    assert usagemeter.force_flush(10_000)

    points = [p for p in grpc_receiver.recorder.sum_points() if p.metric == "feature.usage"]
    assert not [p for p in points if "otel.metric.overflow" in p.attributes]
    assert len(grpc_receiver.recorder.metrics) == 2  # 50 series, then the remaining 10
    assert grpc_receiver.recorder.usage_totals() == {(f"user-{n}", "chat_messages"): 1 for n in range(60)}
