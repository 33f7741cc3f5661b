"""The instrumentation's process-wide pipeline and the calls a host service makes."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Mapping

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from usagemeter_instrumentation._config import SpanSampling, port_mismatch, resolve_settings
from usagemeter_instrumentation._names import CONVERSION_NAME, FEATURE_KEY, FEATURE_USE_SPAN, USER_ID
from usagemeter_instrumentation._once import OnceLogger
from usagemeter_instrumentation._pipeline import Pipeline, build_pipeline
from usagemeter_instrumentation._quantity import MAX_AMOUNT, Amount, amount_problem, tally_amount
from usagemeter_instrumentation._tally import Key

_logger = logging.getLogger("usagemeter_instrumentation")
_once = OnceLogger(_logger)
_lock = threading.Lock()
_pipeline: Pipeline | None = None
_atexit_registered = False
_ONE = 1
#: The longest dimension value put on a ``feature.usage`` point, in characters.
MAX_DIMENSION_VALUE_CHARS = 128


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    export_interval_millis: int | None = None,
    cardinality_limit: int | None = None,
    headers: dict[str, str] | None = None,
    export_timeout_millis: int | None = None,
    max_pending_series: int | None = None,
    span_sampling: SpanSampling = None,
    dedup_window_seconds: float | None = None,
    dimension_attributes: Iterable[str] | None = None,
    set_global: bool = False,
) -> None:
    """Start the metering pipeline of this process.

    Explicit arguments win over the standard ``OTEL_*`` variables, which win over usagemeter's
    defaults: OTLP over gRPC to ``http://localhost:4317``, export every 1000 ms, delta
    temporality, up to 100,000 (user, feature) pairs per export interval. ``endpoint`` is the base
    URL of the receiver; for ``http/protobuf`` the signal paths ``/v1/metrics`` and
    ``/v1/traces`` are appended. ``export_timeout_millis`` bounds each export, retries included.
    ``max_pending_series`` bounds the (user, feature) pairs kept while exports fail. A failed export is
    resent unchanged before newer counts, so the collector recognises it if it had stored it;
    ``dedup_window_seconds`` is the collector's ``USAGEMETER_DEDUP_WINDOW_SECONDS`` (600 by default):
    an export not delivered within it is given up and counted as dropped.
    ``span_sampling`` opts into ``feature.use`` spans for uses with metadata: one ratio for all
    features or a mapping of feature key to ratio; counts never depend on it.
    ``dimension_attributes`` names the metadata keys that go on the ``feature.usage`` point, so limits
    can slice by them (default: ``USAGEMETER_DIMENSION_ATTRIBUTES``, comma-separated, the operator's
    allow-list); other metadata goes on spans only. An endpoint on the other transport's standard port
    (4318 with ``grpc``, 4317 with ``http/protobuf``) is logged as a warning.

    The pipeline owns its providers and leaves the host's global OpenTelemetry providers alone
    unless ``set_global`` is true. Calling again with the same settings does nothing; with other
    settings it logs a warning and keeps the running pipeline (call :func:`shutdown` first to
    reconfigure). Pending usage is flushed when the process exits. Raises ``ValueError`` for
    invalid settings.
    """
    global _pipeline
    settings = resolve_settings(
        service_name,
        endpoint,
        protocol=protocol,
        export_interval_millis=export_interval_millis,
        export_timeout_millis=export_timeout_millis,
        cardinality_limit=cardinality_limit,
        headers=headers,
        max_pending_series=max_pending_series,
        span_sampling=span_sampling,
        dedup_window_seconds=dedup_window_seconds,
        dimension_attributes=dimension_attributes,
    )
    with _lock:
        if _pipeline is not None:
            if _pipeline.settings != settings:
                _logger.warning("usagemeter instrumentation is already configured; keeping the running pipeline")
            return
        pipeline = _pipeline = build_pipeline(settings)
        _once.reset()
        _register_exit_flush()
    mismatch = port_mismatch(settings)
    if mismatch:
        _logger.warning(mismatch)
    if set_global:
        metrics.set_meter_provider(pipeline.meter_provider)
        trace.set_tracer_provider(pipeline.tracer_provider)
    _logger.info("usagemeter instrumentation exports feature usage over %s", settings.metrics.protocol)


def track_feature_use(feature_key: str, user_id: str, amount: int | float = 1, **metadata: object) -> None:
    """Add ``amount`` (one use by default) of ``feature_key`` by ``user_id``.

    ``amount`` is a non-negative int or float in the feature's unit (tokens, bytes, …), counted exactly:
    ints stay ints, a float is rounded to 6 decimals and summed as an integer of micro-units. An
    amount of 0 records nothing; a negative, NaN, infinite, bool or non-numeric amount, or one above
    the collector's per-point maximum (1e15), is dropped and logged once with the reason.
    The amount is added to an in-process tally that the pipeline exports once per interval, so
    the call costs a dictionary update. Metadata whose key is a configured dimension attribute goes
    on the ``feature.usage`` point (as a string of at most 128 characters); all metadata (model,
    tokens, …) goes on a ``feature.use`` span when ``span_sampling`` selects the feature. Never raises
    and never waits for the network; without :func:`configure` it does nothing and warns once.
    """
    pipeline = _pipeline
    if pipeline is None:
        _once.warning("not-configured", "usagemeter instrumentation is not configured; feature usage is not recorded")
        return
    # The plain use stays as cheap as before amounts: CPython shares the int 1, so ``is`` tells it apart at
    # once; any other amount takes the checked path below.
    if (
        amount is _ONE
        and type(feature_key) is str
        and type(user_id) is str
        and feature_key
        and user_id
        and not metadata
    ):
        try:
            pipeline.usage.add((user_id, feature_key))
        except Exception as error:  # a metering failure must never reach the host's request path
            _once.warning(f"error:{type(error).__name__}", "usagemeter could not record a feature use", exc_info=True)
        return
    try:
        _record(pipeline, feature_key, user_id, amount, metadata)
    except Exception as error:
        _once.warning(f"error:{type(error).__name__}", "usagemeter could not record a feature use", exc_info=True)


def track_conversion(name: str, user_id: str | None = None, **attributes: object) -> None:
    """Count one conversion (``signup``, ``lead``, ``upgrade``, …) as ``conversion.count``.

    ``user_id`` is optional (a lead may have none yet); further attributes become attributes of
    the data point, so keep their values few. Never raises; without :func:`configure` it does
    nothing and warns once.
    """
    pipeline = _pipeline
    if pipeline is None:
        _once.warning("not-configured", "usagemeter instrumentation is not configured; conversions are not recorded")
        return
    try:
        conversion = _identifier(name)
        if not conversion:
            _once.warning("empty-conversion", "usagemeter ignored a conversion without a name")
            return
        point = _span_attributes(attributes)
        point[CONVERSION_NAME] = conversion
        user = _identifier(user_id)
        if user:
            point[USER_ID] = user
        pipeline.conversions.add(pipeline.conversions.key_of(point))
    except Exception as error:
        _once.warning(f"error:{type(error).__name__}", "usagemeter could not record a conversion", exc_info=True)


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Export the usage recorded so far; ``False`` when not configured or the flush did not complete."""
    pipeline = _pipeline
    if pipeline is None:
        return False
    try:
        return pipeline.force_flush(timeout_millis)
    except Exception:  # exporters report failures by raising from force_flush
        _logger.warning("usagemeter could not flush feature usage", exc_info=True)
        return False


def shutdown(timeout_millis: int | None = None) -> None:
    """Flush pending usage and stop the pipeline; :func:`configure` may then be called again."""
    global _pipeline
    with _lock:
        pipeline, _pipeline = _pipeline, None
    _once.reset()
    if pipeline is None:
        return
    try:
        pipeline.shutdown(timeout_millis)
    except Exception:
        _logger.warning("usagemeter could not flush feature usage at shutdown", exc_info=True)


def _record(pipeline: Pipeline, feature_key: str, user_id: str, amount: object, metadata: Mapping[str, object]) -> None:
    feature, user = _identifier(feature_key), _identifier(user_id)
    if not feature or not user:
        _once.warning("empty-identifier", "usagemeter ignored a feature use without feature key or user id")
        return
    if type(amount) is int and 0 < amount <= MAX_AMOUNT:
        quantity: Amount = amount
    elif type(amount) is float and 0.0 < amount <= MAX_AMOUNT:  # NaN and infinities fail the comparison
        quantity = tally_amount(amount)
    else:
        quantity = _quantity(feature, amount)
    if not quantity:
        return
    key: Key = (user, feature)
    dimensions = pipeline.settings.dimension_attributes
    if metadata and dimensions:
        key += _dimension_items(feature, metadata, dimensions)
    pipeline.usage.add(key, quantity)
    if metadata and pipeline.sampler.enabled and pipeline.sampler.sampled(feature):
        attributes = _span_attributes(metadata)
        attributes.update({FEATURE_KEY: feature, USER_ID: user})
        pipeline.tracer.start_span(FEATURE_USE_SPAN, attributes=attributes).end()


def _quantity(feature: str, amount: object) -> Amount:
    """The tally entry of ``amount``; 0 (nothing to record) for an amount that cannot be metered."""
    problem = amount_problem(amount)
    if problem is not None:
        _once.warning(f"amount:{problem.split(',')[0]}", "usagemeter dropped a use of %s: %s", feature, problem)
        return 0
    return tally_amount(amount)  # type: ignore[arg-type]


def _dimension_items(feature: str, metadata: Mapping[str, object], names: frozenset[str]) -> Key:
    """The sorted (name, value) items of the dimension attributes in ``metadata``; too long values left out."""
    items: list[tuple[str, str]] = []
    for name in names.intersection(metadata):
        text = _identifier(metadata[name])
        if not text:  # an empty value names no slice: the use counts on the feature total
            continue
        if len(text) > MAX_DIMENSION_VALUE_CHARS:
            _once.warning(
                f"dimension-too-long:{name}",
                "usagemeter counted a use of %s without its %s: the value is longer than %d characters",
                feature,
                name,
                MAX_DIMENSION_VALUE_CHARS,
            )
            continue
        items.append((name, text))
    items.sort()
    return tuple(items)


def _identifier(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _span_attributes(metadata: Mapping[str, object]) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        attributes[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return attributes


def _register_exit_flush() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True
