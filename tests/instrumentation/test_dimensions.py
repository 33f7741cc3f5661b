"""Dimension attributes: allow-listed metadata goes on the feature.usage point; the rest stays on spans."""

from __future__ import annotations

import logging

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver
from usagemeter_instrumentation import _api
from usagemeter_instrumentation._tally import Tally

LONG_INTERVAL = 600_000


def point_keys(receiver: GrpcReceiver) -> dict[tuple[tuple[str, str], ...], int]:
    """Micro-unit totals of feature.usage per sorted attribute items."""
    return dict(receiver.recorder.usage_micros())


def test_dimension_attributes_go_on_the_usage_point_and_other_metadata_does_not(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure(
        "host",
        grpc_receiver.endpoint,
        export_interval_millis=LONG_INTERVAL,
        dimension_attributes=("model", "region"),
        span_sampling=1.0,
    )
    usagemeter.track_feature_use("ai_tokens", "alice", 120, model="gpt-4o", prompt_tokens=100)
    usagemeter.track_feature_use("ai_tokens", "alice", 30, model="gpt-4o", prompt_tokens=20)
    usagemeter.track_feature_use("ai_tokens", "alice", 7, model="gpt-4o-mini", region="eu")
    usagemeter.track_feature_use("ai_tokens", "alice", 2.5, request_id="r-1")
    usagemeter.track_feature_use("ai_tokens", "alice", 1, model=None)
    usagemeter.track_feature_use("ai_tokens", "bob", 5, model=4)
    assert usagemeter.force_flush(10_000)

    base = (("feature.key", "ai_tokens"), ("user.id", "alice"))
    assert point_keys(grpc_receiver) == {
        (("feature.key", "ai_tokens"), ("model", "gpt-4o"), ("user.id", "alice")): 150_000_000,
        (("feature.key", "ai_tokens"), ("model", "gpt-4o-mini"), ("region", "eu"), ("user.id", "alice")): 7_000_000,
        base: 3_500_000,
        (("feature.key", "ai_tokens"), ("model", "4"), ("user.id", "bob")): 5_000_000,
    }
    spans = grpc_receiver.recorder.spans()
    assert any(attributes.get("request_id") == "r-1" for _, attributes, _ in spans)
    assert any(attributes.get("prompt_tokens") == 100 for _, attributes, _ in spans)


def test_dimension_attributes_default_to_the_operators_allow_list_variable(
    grpc_receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USAGEMETER_DIMENSION_ATTRIBUTES", " model , ,region")
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    assert _api._pipeline is not None
    assert _api._pipeline.settings.dimension_attributes == {"model", "region"}
    usagemeter.track_feature_use("ai_tokens", "alice", 3, model="gpt-4o", tier="pro")
    assert usagemeter.force_flush(10_000)

    assert point_keys(grpc_receiver) == {
        (("feature.key", "ai_tokens"), ("model", "gpt-4o"), ("user.id", "alice")): 3_000_000,
    }


def test_an_explicit_empty_allow_list_wins_over_the_variable(
    grpc_receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USAGEMETER_DIMENSION_ATTRIBUTES", "model")
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL, dimension_attributes=())
    usagemeter.track_feature_use("ai_tokens", "alice", 3, model="gpt-4o")
    assert usagemeter.force_flush(10_000)

    assert point_keys(grpc_receiver) == {(("feature.key", "ai_tokens"), ("user.id", "alice")): 3_000_000}


def test_a_dimension_value_longer_than_128_characters_is_left_out_with_one_warning_and_the_use_counted(
    grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure(
        "host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL, dimension_attributes=("model",)
    )
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.track_feature_use("ai_tokens", "alice", 10, model="m" * 129)
        usagemeter.track_feature_use("ai_tokens", "alice", 5, model="x" * 200)
        usagemeter.track_feature_use("ai_tokens", "alice", 1, model="m" * 128)
    assert usagemeter.force_flush(10_000)

    assert point_keys(grpc_receiver) == {
        (("feature.key", "ai_tokens"), ("user.id", "alice")): 15_000_000,
        (("feature.key", "ai_tokens"), ("model", "m" * 128), ("user.id", "alice")): 1_000_000,
    }
    warnings = [r.getMessage() for r in caplog.records if "longer than 128 characters" in r.getMessage()]
    assert warnings == [
        "usagemeter counted a use of ai_tokens without its model: the value is longer than 128 characters"
    ]


def test_dimension_series_stay_within_the_pending_bound(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure(
        "host",
        grpc_receiver.endpoint,
        export_interval_millis=LONG_INTERVAL,
        dimension_attributes=("model",),
        max_pending_series=10,
    )
    for index in range(50):
        usagemeter.track_feature_use("ai_tokens", "alice", 1, model=f"model-{index}")
    assert _api._pipeline is not None
    assert _api._pipeline.usage.dropped == 40
    assert usagemeter.force_flush(10_000)

    assert len(point_keys(grpc_receiver)) == 10
    dropped = grpc_receiver.recorder.metric_totals("usagemeter.instrumentation.dropped")
    assert dropped == {(("metric.name", "feature.usage"),): 40}


def test_uses_of_a_refused_export_keep_their_dimension_attributes(grpc_receiver: GrpcReceiver) -> None:
    grpc_receiver.recorder.reject_metrics = 1
    usagemeter.configure(
        "host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL, dimension_attributes=("model",)
    )
    usagemeter.track_feature_use("ai_tokens", "alice", 0.5, model="gpt-4o")
    usagemeter.track_feature_use("ai_tokens", "alice", 2)
    assert usagemeter.force_flush(5_000) is False
    usagemeter.track_feature_use("ai_tokens", "alice", 0.25, model="gpt-4o")
    usagemeter.shutdown()

    assert point_keys(grpc_receiver) == {
        (("feature.key", "ai_tokens"), ("model", "gpt-4o"), ("user.id", "alice")): 750_000,
        (("feature.key", "ai_tokens"), ("user.id", "alice")): 2_000_000,
    }


@pytest.mark.parametrize("names", [("user.id",), ("feature.key", "model"), ("",), "model"])
def test_dimension_attributes_that_would_hide_an_id_or_are_not_names_are_refused(names: object) -> None:
    with pytest.raises(ValueError, match="dimension_attributes"):
        usagemeter.configure("host", "http://127.0.0.1:4317", dimension_attributes=names)  # type: ignore[arg-type]


def test_a_usage_key_with_dimensions_is_rebuilt_from_its_point_attributes() -> None:
    # A collection refused while an earlier export waits gives its points back to the tally by their attributes.
    usage = Tally(("user.id", "feature.key"), 10, extra=True)
    keys = [("alice", "ai_tokens"), ("alice", "ai_tokens", ("model", "gpt-4o"), ("region", "eu"))]
    assert [usage.key_of(usage.attributes(key)) for key in keys] == keys
