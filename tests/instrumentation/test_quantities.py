"""Quantities: amounts reach a real OTLP receiver exactly, ints as ints, fractions as exact micro-units."""

from __future__ import annotations

import logging
import math

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver
from usagemeter_instrumentation import _api
from usagemeter_instrumentation._quantity import MAX_POINT_UNITS

LONG_INTERVAL = 600_000


def usage_points(receiver: GrpcReceiver | HttpReceiver) -> list[tuple[str, int | float]]:
    """(user, value) of every ``feature.usage`` point received, in arrival order."""
    points = receiver.recorder.sum_points()
    return [(p.attributes["user.id"], p.value) for p in points if p.metric == "feature.usage"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_fractional_amounts_are_summed_exactly_and_exported_as_the_decimal(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    usagemeter.configure("host", receiver.endpoint, protocol=protocol, export_interval_millis=LONG_INTERVAL)
    usagemeter.track_feature_use("credits", "alice", 0.1)
    usagemeter.track_feature_use("credits", "alice", 0.2)
    for _ in range(10):
        usagemeter.track_feature_use("credits", "bob", 0.1)
    usagemeter.track_feature_use("credits", "carol", 2.5)
    usagemeter.track_feature_use("credits", "carol", 3)
    assert usagemeter.force_flush(10_000)

    values = dict(usage_points(receiver))
    assert values == {"alice": 0.3, "bob": 1, "carol": 5.5}
    assert type(values["bob"]) is int  # a whole total goes as an int point


def test_a_series_of_int_amounts_exports_int_points(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    usagemeter.track_feature_use("ai_tokens", "alice", 1200)
    usagemeter.track_feature_use("ai_tokens", "alice", 34)
    usagemeter.track_feature_use("ai_tokens", "alice")
    usagemeter.track_feature_use("ai_tokens", "bob", 10**11)
    assert usagemeter.force_flush(10_000)

    values = usage_points(grpc_receiver)
    assert sorted(values) == [("alice", 1235), ("bob", 10**11)]
    assert all(type(value) is int for _, value in values)


def test_amounts_round_to_six_decimals(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    usagemeter.track_feature_use("seconds", "alice", 0.0000005)  # half a micro-unit rounds up
    usagemeter.track_feature_use("seconds", "alice", 1.2345674)
    usagemeter.track_feature_use("seconds", "bob", 0.0000004)  # rounds to nothing: no point at all
    assert usagemeter.force_flush(10_000)

    assert grpc_receiver.recorder.usage_micros() == {(("feature.key", "seconds"), ("user.id", "alice")): 1_234_568}


def test_bad_amounts_are_dropped_with_their_reason_once_and_the_uses_around_them_counted(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    bad: list[object] = [-1, -0.5, math.nan, math.inf, -math.inf, True, False, "3", None, 10**15 + 1, 1e16]
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        for amount in bad:
            usagemeter.track_feature_use("ai_tokens", "alice", 7)
            usagemeter.track_feature_use("ai_tokens", "alice", amount)  # type: ignore[arg-type]
            usagemeter.track_feature_use("ai_tokens", "alice", -2)  # the same reason again is not logged again
        usagemeter.track_feature_use("ai_tokens", "alice", 0.25)
    assert usagemeter.force_flush(10_000)

    assert dict(usage_points(grpc_receiver)) == {"alice": 7 * len(bad) + 0.25}
    messages = [record.getMessage() for record in caplog.records if "dropped a use" in record.getMessage()]
    assert len(messages) == 4
    assert any("must not be negative, got -1" in message for message in messages)
    assert any("must be finite, got nan" in message for message in messages)
    assert any("must be an int or a float, got bool" in message for message in messages)
    assert any("must not exceed 1e+15, got 1000000000000001" in message for message in messages)


def test_an_amount_of_zero_records_nothing(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    usagemeter.track_feature_use("ai_tokens", "alice", 0)
    usagemeter.track_feature_use("ai_tokens", "bob", 0.0)
    usagemeter.track_feature_use("ai_tokens", "carol", 0, model="gpt-4o")
    usagemeter.track_feature_use("chat", "dave")
    assert usagemeter.force_flush(10_000)

    assert usage_points(grpc_receiver) == [("dave", 1)]


def test_a_total_above_what_one_point_carries_exactly_is_exported_over_several_points(
    grpc_receiver: GrpcReceiver,
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    for _ in range(3):
        usagemeter.track_feature_use("bytes", "alice", 10**12)
    usagemeter.track_feature_use("bytes", "alice", 0.5)
    usagemeter.track_feature_use("bytes", "bob", 10**15)  # the largest amount of one call
    assert usagemeter.force_flush(10_000)

    values: dict[str, list[int | float]] = {}
    for user, value in usage_points(grpc_receiver):
        values.setdefault(user, []).append(value)
    assert values["alice"] == [MAX_POINT_UNITS] * 6 + [0.5]
    assert values["bob"] == [MAX_POINT_UNITS] * 2000


def test_a_fractional_total_beyond_double_precision_sends_its_fraction_after_its_whole_part(
    grpc_receiver: GrpcReceiver,
) -> None:
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    usagemeter.track_feature_use("bytes", "alice", 2**36)
    usagemeter.track_feature_use("bytes", "alice", 0.000001)
    usagemeter.track_feature_use("bytes", "bob", 2**31)
    usagemeter.track_feature_use("bytes", "bob", 0.000001)
    assert usagemeter.force_flush(10_000)

    assert usage_points(grpc_receiver) == [("alice", 2**36), ("bob", 2**31 + 0.000001), ("alice", 0.000001)]


def test_uses_of_a_refused_export_keep_their_exact_quantities(grpc_receiver: GrpcReceiver) -> None:
    grpc_receiver.recorder.reject_metrics = 1
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    for index in range(1, 50):
        usagemeter.track_feature_use("credits", f"user-{index % 7}", index / 1000)
    assert usagemeter.force_flush(5_000) is False
    usagemeter.track_feature_use("credits", "user-0", 0.000249)
    assert _api._pipeline is not None and _api._pipeline.pending() > 0
    usagemeter.shutdown()

    expected: dict[str, int] = {}
    for index in range(1, 50):
        expected[f"user-{index % 7}"] = expected.get(f"user-{index % 7}", 0) + index * 1000
    expected["user-0"] += 249
    totals = grpc_receiver.recorder.usage_micros()
    assert {dict(key)["user.id"]: micros for key, micros in totals.items()} == expected
