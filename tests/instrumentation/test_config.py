"""Settings: explicit arguments win over OTEL_* variables, which win over usagemeter's defaults."""

from __future__ import annotations

import logging

import pytest

import usagemeter_instrumentation as usagemeter
from tests.conftest import free_port
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver
from usagemeter_instrumentation import _api
from usagemeter_instrumentation._config import resolve_settings


def test_environment_configures_protocol_endpoint_headers_and_service(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
    usagemeter.configure(span_sampling=1.0)
    usagemeter.track_feature_use("chat_messages", "alice", model="m")
    usagemeter.shutdown()

    recorder = http_receiver.recorder
    assert recorder.usage_totals() == {("alice", "chat_messages"): 1}
    assert {p.service_name for p in recorder.sum_points()} == {"from-env"}
    assert [name for name, _, _ in recorder.spans()] == ["feature.use"]
    assert all(headers.get("x-tenant") == "acme" for headers in recorder.headers)


def test_signal_specific_endpoint_wins_over_the_generic_one(
    grpc_receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", grpc_receiver.endpoint)
    usagemeter.configure("host", export_timeout_millis=300)
    usagemeter.track_feature_use("chat_messages", "alice")
    usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {("alice", "chat_messages"): 1}


def test_explicit_arguments_win_over_the_environment(
    grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=env")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    usagemeter.configure(
        "explicit",
        grpc_receiver.endpoint,
        protocol="grpc",
        headers={"x-tenant": "explicit"},
        export_interval_millis=600_000,
        span_sampling=1.0,
    )
    reader = _api._pipeline.metric_reader  # type: ignore[union-attr]
    assert reader._export_interval_millis == 600_000
    usagemeter.track_feature_use("chat_messages", "alice", model="m")
    usagemeter.shutdown()

    recorder = grpc_receiver.recorder
    assert recorder.usage_totals() == {("alice", "chat_messages"): 1}
    assert {p.service_name for p in recorder.sum_points()} == {"explicit"}
    assert {headers.get("x-tenant") for headers in recorder.headers} == {"explicit"}
    assert http_receiver.recorder.metrics == [] and http_receiver.recorder.traces == []


def test_export_interval_comes_from_the_environment_before_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
    usagemeter.configure("host", f"http://127.0.0.1:{free_port()}", export_timeout_millis=300)
    reader = _api._pipeline.metric_reader  # type: ignore[union-attr]
    assert reader._export_interval_millis == 250


def test_defaults_are_grpc_every_second_with_a_high_cardinality_limit() -> None:
    settings = resolve_settings(environ={})
    assert settings.metrics.protocol == settings.traces.protocol == "grpc"
    assert settings.metrics.endpoint is None  # the SDK's own default, http://localhost:4317
    assert settings.export_interval_millis == usagemeter.DEFAULT_EXPORT_INTERVAL_MILLIS == 1000
    assert settings.cardinality_limit == usagemeter.DEFAULT_CARDINALITY_LIMIT == 100_000


def test_http_endpoints_get_their_signal_paths() -> None:
    settings = resolve_settings(endpoint="collector:4318/", protocol="http/protobuf", environ={})
    assert settings.metrics.endpoint == "http://collector:4318/v1/metrics"
    assert settings.traces.endpoint == "http://collector:4318/v1/traces"


def test_signal_protocol_variable_wins_over_the_generic_one() -> None:
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}
    settings = resolve_settings(environ=environ)
    assert (settings.metrics.protocol, settings.traces.protocol) == ("http/protobuf", "grpc")


@pytest.mark.parametrize(
    ("arguments", "environ", "expected"),
    [
        ({}, {}, 590.0),
        ({"dedup_window_seconds": 60, "export_timeout_millis": 2_000}, {}, 58.0),
        ({}, {"OTEL_EXPORTER_OTLP_TIMEOUT": "30"}, 570.0),
        ({}, {"OTEL_EXPORTER_OTLP_TIMEOUT": "30", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "20"}, 580.0),
        ({"export_timeout_millis": 1_000}, {"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "20"}, 599.0),
        ({"dedup_window_seconds": 5}, {}, 0.0),
    ],
)
def test_a_failed_export_is_resent_only_while_the_resend_arrives_within_the_dedup_window(
    arguments: dict, environ: dict, expected: float
) -> None:
    assert resolve_settings(environ=environ, **arguments).resend_window_seconds == expected


@pytest.mark.parametrize(
    ("arguments", "environ", "message"),
    [
        ({"protocol": "http/json"}, {}, "protocol='http/json' is not supported"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL='thrift' is not supported"),
        ({"export_interval_millis": 0}, {}, "export_interval_millis must be a positive integer"),
        ({"cardinality_limit": -5}, {}, "cardinality_limit must be a positive integer"),
        ({"dedup_window_seconds": 0}, {}, "dedup_window_seconds must be a positive number"),
        ({"dedup_window_seconds": "600"}, {}, "dedup_window_seconds must be a positive number"),
    ],
)
def test_invalid_settings_are_rejected_clearly(arguments: dict, environ: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        resolve_settings(environ=environ, **arguments)


def test_configure_rejects_invalid_settings_before_starting_anything() -> None:
    with pytest.raises(ValueError, match="not supported"):
        usagemeter.configure("host", protocol="udp")
    assert _api._pipeline is None


PORT_WARNING = "is the standard port of"


@pytest.mark.parametrize(
    ("endpoint", "protocol", "advice"),
    [
        ("http://127.0.0.1:4318", "grpc", "use port 4317 for grpc, or set protocol='http/protobuf'"),
        ("127.0.0.1:4317", "http/protobuf", "use port 4318 for http/protobuf, or set protocol='grpc'"),
    ],
)
def test_configure_warns_once_when_the_endpoint_is_the_other_transports_standard_port(
    endpoint: str, protocol: str, advice: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.configure("host", endpoint, protocol=protocol, export_timeout_millis=300)
        usagemeter.configure("host", endpoint, protocol=protocol, export_timeout_millis=300)

    warnings = [record.getMessage() for record in caplog.records if PORT_WARNING in record.getMessage()]
    assert len(warnings) == 1
    assert advice in warnings[0] and f"over {protocol}" in warnings[0]


def test_an_endpoint_from_the_environment_on_the_wrong_port_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.configure("host", export_timeout_millis=300)

    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in caplog.text


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [
        ("http://127.0.0.1:4317", "grpc"),
        ("http://127.0.0.1:4318", "http/protobuf"),
        ("https://collector.example:443", "grpc"),
        (None, "http/protobuf"),
    ],
)
def test_the_standard_pairs_and_other_ports_do_not_warn(
    endpoint: str | None, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="usagemeter_instrumentation"):
        usagemeter.configure("host", endpoint, protocol=protocol, export_timeout_millis=300)

    assert PORT_WARNING not in caplog.text
