"""Resolution of pipeline settings: explicit arguments, then OTEL_* variables, then usagemeter's defaults.

This is the only module that reads the environment. Where the OpenTelemetry SDK already
honours a variable (service name, endpoints, headers, timeouts, export interval), the
setting is left as ``None`` so the SDK applies its own parsing of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from usagemeter_instrumentation._names import FEATURE_KEY, USER_ID

Protocol = Literal["grpc", "http/protobuf"]
Signal = Literal["metrics", "traces"]
# One ratio for every feature, or ratios per feature key (absent keys are not traced).
SpanSampling = float | Mapping[str, float] | None

PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL: Protocol = "grpc"
DEFAULT_EXPORT_INTERVAL_MILLIS = 1000
DEFAULT_CARDINALITY_LIMIT = 100_000
DEFAULT_MAX_PENDING_SERIES = 1_000_000
#: The usagemeter collector's default ``USAGEMETER_DEDUP_WINDOW_SECONDS``.
DEFAULT_DEDUP_WINDOW_SECONDS = 600.0
#: The OTLP exporters' own default timeout, when neither an argument nor OTEL_EXPORTER_OTLP_TIMEOUT sets one.
DEFAULT_EXPORT_TIMEOUT_SECONDS = 10.0

_PROTOCOL_VARIABLE = "OTEL_EXPORTER_OTLP_PROTOCOL"
_SIGNAL_PROTOCOL_VARIABLES: dict[Signal, str] = {
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "traces": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
}
_EXPORT_INTERVAL_VARIABLE = "OTEL_METRIC_EXPORT_INTERVAL"
_TIMEOUT_VARIABLE = "OTEL_EXPORTER_OTLP_TIMEOUT"
_METRICS_TIMEOUT_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
_HTTP_SIGNAL_PATHS: dict[Signal, str] = {"metrics": "v1/metrics", "traces": "v1/traces"}
_ENDPOINT_VARIABLES: dict[Signal, str] = {
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "traces": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
}
_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
#: The same variable tells ``usagemeter migrate`` which attributes the rollups slice by.
DIMENSION_ATTRIBUTES_VARIABLE = "USAGEMETER_DIMENSION_ATTRIBUTES"
#: Each transport's standard OTLP port.
STANDARD_PORTS: dict[Protocol, int] = {"grpc": 4317, "http/protobuf": 4318}


@dataclass(frozen=True)
class ExporterSettings:
    """How one signal is exported; ``None`` fields are left to the SDK's environment handling."""

    protocol: Protocol
    endpoint: str | None
    headers: dict[str, str] | None
    timeout_seconds: float | None


@dataclass(frozen=True)
class PipelineSettings:
    """Everything needed to build the metering pipeline."""

    service_name: str | None
    metrics: ExporterSettings
    traces: ExporterSettings
    export_interval_millis: int | None
    export_timeout_millis: int | None
    cardinality_limit: int
    max_pending_series: int = DEFAULT_MAX_PENDING_SERIES
    span_sampling: SpanSampling = None
    #: How long after its first attempt a failed export may still be resent (see :func:`resend_window`).
    resend_window_seconds: float = DEFAULT_DEDUP_WINDOW_SECONDS - DEFAULT_EXPORT_TIMEOUT_SECONDS
    #: Metadata keys that go on the ``feature.usage`` data point (the operator's allow-list).
    dimension_attributes: frozenset[str] = frozenset()
    #: Where each signal is sent (the endpoint as given or read from OTEL_*), to check its port.
    endpoints: tuple[tuple[Signal, str], ...] = ()


def resolve_settings(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    export_interval_millis: int | None = None,
    export_timeout_millis: int | None = None,
    cardinality_limit: int | None = None,
    headers: Mapping[str, str] | None = None,
    max_pending_series: int | None = None,
    span_sampling: SpanSampling = None,
    dedup_window_seconds: float | None = None,
    dimension_attributes: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineSettings:
    """Combine explicit arguments with the environment; raise ``ValueError`` on invalid values."""
    env = os.environ if environ is None else environ
    _check_positive("export_interval_millis", export_interval_millis)
    _check_positive("export_timeout_millis", export_timeout_millis)
    _check_positive("cardinality_limit", cardinality_limit)
    _check_positive("max_pending_series", max_pending_series)
    _check_sampling(span_sampling)
    _check_window(dedup_window_seconds)
    window = DEFAULT_DEDUP_WINDOW_SECONDS if dedup_window_seconds is None else float(dedup_window_seconds)
    header_dict = dict(headers) if headers is not None else None
    timeout_seconds = export_timeout_millis / 1000 if export_timeout_millis is not None else None

    def exporter(signal: Signal) -> ExporterSettings:
        chosen = _resolve_protocol(protocol, signal, env)
        return ExporterSettings(chosen, _signal_endpoint(endpoint, chosen, signal), header_dict, timeout_seconds)

    return PipelineSettings(
        service_name=service_name or None,
        metrics=exporter("metrics"),
        traces=exporter("traces"),
        export_interval_millis=_resolve_interval(export_interval_millis, env),
        export_timeout_millis=export_timeout_millis,
        cardinality_limit=cardinality_limit or DEFAULT_CARDINALITY_LIMIT,
        max_pending_series=max_pending_series or DEFAULT_MAX_PENDING_SERIES,
        span_sampling=dict(span_sampling) if isinstance(span_sampling, Mapping) else span_sampling,
        resend_window_seconds=resend_window(window, timeout_seconds, env),
        dimension_attributes=_resolve_dimensions(dimension_attributes, env),
        endpoints=tuple((signal, url) for signal in ("metrics", "traces") if (url := _sent_to(endpoint, signal, env))),
    )


def port_mismatch(settings: PipelineSettings) -> str | None:
    """A warning when an endpoint's port is the standard port of the other OTLP transport, else ``None``."""
    for signal, url in settings.endpoints:
        protocol = settings.metrics.protocol if signal == "metrics" else settings.traces.protocol
        try:
            port = urlsplit(url if "://" in url else f"http://{url}").port
        except ValueError:  # the exporter reports an unusable URL itself
            continue
        other = next(known for known in PROTOCOLS if known != protocol)
        if port == STANDARD_PORTS[other]:
            return (
                f"usagemeter sends {signal} over {protocol} to {url}, but {port} is the standard port of {other}: "
                f"use port {STANDARD_PORTS[protocol]} for {protocol}, or set protocol={other!r} "
                f"(OTEL_EXPORTER_OTLP_PROTOCOL={other})"
            )
    return None


def _sent_to(endpoint: str | None, signal: Signal, env: Mapping[str, str]) -> str | None:
    return endpoint or env.get(_ENDPOINT_VARIABLES[signal]) or env.get(_ENDPOINT_VARIABLE) or None


def _resolve_dimensions(explicit: Iterable[str] | None, env: Mapping[str, str]) -> frozenset[str]:
    if explicit is None:
        raw = env.get(DIMENSION_ATTRIBUTES_VARIABLE, "")
        names = [name.strip() for name in raw.split(",") if name.strip()]
        source = DIMENSION_ATTRIBUTES_VARIABLE
    elif isinstance(explicit, str):
        raise ValueError(f"dimension_attributes must be a collection of names, got the string {explicit!r}")
    else:
        names, source = list(explicit), "dimension_attributes"
    for name in names:
        if not isinstance(name, str) or not name.strip() or name in (USER_ID, FEATURE_KEY):
            raise ValueError(f"{source} holds {name!r}; use attribute names other than {USER_ID} and {FEATURE_KEY}")
    return frozenset(names)


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def resend_window(dedup_window_seconds: float, timeout_seconds: float | None, env: Mapping[str, str]) -> float:
    """How long after its first attempt a failed export may still be resent.

    A resend must reach the receiver within its dedup window, counted from when the first attempt
    was stored; that attempt started earlier, and a resend takes up to the export timeout to arrive.
    """
    timeout = timeout_seconds if timeout_seconds is not None else _env_timeout(env)
    return max(dedup_window_seconds - timeout, 0.0)


def _env_timeout(env: Mapping[str, str]) -> float:
    """The exporters' timeout in seconds as the SDK reads it from the environment."""
    raw = env.get(_METRICS_TIMEOUT_VARIABLE) or env.get(_TIMEOUT_VARIABLE)
    try:
        return float(raw) if raw else DEFAULT_EXPORT_TIMEOUT_SECONDS
    except ValueError:  # the SDK warns about it and uses its default
        return DEFAULT_EXPORT_TIMEOUT_SECONDS


def _check_window(seconds: float | None) -> None:
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0):
        raise ValueError(f"dedup_window_seconds must be a positive number, got {seconds!r}")


def _check_sampling(sampling: SpanSampling) -> None:
    ratios = sampling.values() if isinstance(sampling, Mapping) else [] if sampling is None else [sampling]
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"span sampling ratios must be numbers from 0 to 1, got {ratio!r}")


def _resolve_protocol(explicit: str | None, signal: Signal, env: Mapping[str, str]) -> Protocol:
    signal_variable = _SIGNAL_PROTOCOL_VARIABLES[signal]
    candidates = (
        (explicit, "protocol"),
        (env.get(signal_variable), signal_variable),
        (env.get(_PROTOCOL_VARIABLE), _PROTOCOL_VARIABLE),
    )
    for value, source in candidates:
        if value:
            normalised = value.strip().lower()
            for known in PROTOCOLS:
                if normalised == known:
                    return known
            raise ValueError(f"{source}={value!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    return DEFAULT_PROTOCOL


def _signal_endpoint(endpoint: str | None, protocol: Protocol, signal: Signal) -> str | None:
    """The exporter endpoint for an explicit base URL; ``None`` lets the SDK read OTEL_EXPORTER_OTLP_*ENDPOINT."""
    if not endpoint:
        return None
    base = endpoint if "://" in endpoint else f"http://{endpoint}"
    if protocol == "grpc":
        return base
    return f"{base.rstrip('/')}/{_HTTP_SIGNAL_PATHS[signal]}"


def _resolve_interval(explicit: int | None, env: Mapping[str, str]) -> int | None:
    if explicit is not None:
        return explicit
    if env.get(_EXPORT_INTERVAL_VARIABLE):
        return None
    return DEFAULT_EXPORT_INTERVAL_MILLIS
