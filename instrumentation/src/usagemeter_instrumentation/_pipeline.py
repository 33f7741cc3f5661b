"""The OpenTelemetry providers and exporters of one metering pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from usagemeter_instrumentation._config import ExporterSettings, PipelineSettings
from usagemeter_instrumentation._export import ResendingExporter
from usagemeter_instrumentation._names import (
    COLLECTION_HOOK,
    CONVERSION_COUNT_METRIC,
    CONVERSION_COUNT_UNIT,
    CONVERSION_NAME,
    DROPPED_METRIC,
    DROPPED_OF,
    DROPPED_UNIT,
    FEATURE_KEY,
    FEATURE_USAGE_METRIC,
    FEATURE_USAGE_UNIT,
    INSTRUMENTATION_SCOPE,
    SERVICE_NAME,
    USER_ID,
    WORKER_JOBS_METRIC,
)
from usagemeter_instrumentation._quantity import Amount
from usagemeter_instrumentation._sampling import SpanSampler
from usagemeter_instrumentation._tally import Tally, flush_into
from usagemeter_instrumentation._worker_instruments import (
    JOB_KEY_NAMES,
    WorkerInstruments,
    register_worker_instruments,
)

_logger = logging.getLogger(__name__)

# Metering sums are reported as per-interval increments; the up-down and gauge kinds keep the SDK default.
_DELTA_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
}
_DEFAULT_SHUTDOWN_MILLIS = 10_000


@dataclass
class Pipeline:
    """Providers owned by the instrumentation, and the instruments created on them."""

    settings: PipelineSettings
    meter_provider: MeterProvider
    metric_reader: PeriodicExportingMetricReader
    tracer_provider: TracerProvider
    meter: Meter
    tracer: Tracer
    usage: Tally
    conversions: Tally
    sampler: SpanSampler
    workers: WorkerInstruments
    exporter: ResendingExporter

    def force_flush(self, timeout_millis: int) -> bool:
        """Export what has been recorded; ``False`` when an export did not complete."""
        metrics_done = self._flush_tallies(timeout_millis)
        spans_done = self.tracer_provider.force_flush(timeout_millis=timeout_millis)
        return bool(metrics_done and spans_done)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Export what is pending and stop the exporters."""
        budget = timeout_millis or self.settings.export_timeout_millis or _DEFAULT_SHUTDOWN_MILLIS
        try:
            if not self._flush_tallies(budget) and self.exporter.failed_once():
                self.exporter.resend()  # its answer may just have been lost: one more try before stopping
            self.meter_provider.shutdown(timeout_millis=budget)
        finally:
            self.tracer_provider.shutdown()
        lost = self.pending()
        if lost:
            _logger.warning("usagemeter stopped with %s counted uses it could not export", lost)

    def pending(self) -> Amount:
        """Counted uses, conversions and finished jobs not yet delivered (tallied, or in a failed export)."""
        return self.usage.pending() + self.conversions.pending() + self.workers.pending() + self.exporter.pending()

    def _flush_tallies(self, timeout_millis: int) -> bool:
        """Resend a failed export, then collect until the tallies are empty; ``False`` when an export failed.

        Each collection takes up to the cardinality limit of series. The SDK's reader exports only
        collections holding data, so the failed export is resent here first and not left to it.
        """
        if not self.exporter.resend():
            return False
        done = self._collect(timeout_millis)
        pending = self.pending()
        while done and pending:
            done = self._collect(timeout_millis)
            pending, before = self.pending(), pending
            if pending >= before:  # the tallies do not empty: an export is refusing their counts
                return False
        return done and not pending

    def _collect(self, timeout_millis: int) -> bool:
        """One collection and its export; ``False`` when it failed (and waits to be resent) or timed out."""
        done = bool(self.meter_provider.force_flush(timeout_millis=timeout_millis))
        return done and not self.exporter.pending()


def build_pipeline(settings: PipelineSettings) -> Pipeline:
    """Create the meter and tracer providers with exporters for the given settings."""
    attributes = {SERVICE_NAME: settings.service_name} if settings.service_name else {}
    resource = Resource.create(attributes)
    usage = Tally((USER_ID, FEATURE_KEY), settings.max_pending_series, extra=True)
    conversions = Tally((), settings.max_pending_series)
    jobs = Tally(JOB_KEY_NAMES, settings.max_pending_series)
    # Drop counts are tallied too, so a failed export keeps them like the counts themselves.
    drops = Tally((DROPPED_OF,), settings.max_pending_series)
    tallies = {
        FEATURE_USAGE_METRIC: usage,
        CONVERSION_COUNT_METRIC: conversions,
        WORKER_JOBS_METRIC: jobs,
        DROPPED_METRIC: drops,
    }
    inner = _metric_exporter(settings.metrics)
    exporter = ResendingExporter(inner, INSTRUMENTATION_SCOPE, tallies, settings.resend_window_seconds)
    metric_reader = PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.export_interval_millis,
        export_timeout_millis=settings.export_timeout_millis,
        cardinality_limits=_cardinality_limits(settings.cardinality_limit),
    )
    meter_provider = MeterProvider(metric_readers=[metric_reader], resource=resource, shutdown_on_exit=False)
    tracer_provider = _tracer_provider(settings, resource)
    scope_version = _package_version()
    meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE, scope_version)
    workers, hand_over_jobs = register_worker_instruments(meter, jobs)
    hand_over_drops = _register_dropped(meter, tallies)

    def before_collection(limit: int) -> None:
        exporter.resend_in_background()
        hand_over_jobs(limit)
        hand_over_drops(limit)

    _register_tallies(meter, usage, conversions, before_collection, settings.cardinality_limit)
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE, scope_version)
    sampler = SpanSampler(settings.span_sampling)
    return Pipeline(
        settings,
        meter_provider,
        metric_reader,
        tracer_provider,
        meter,
        tracer,
        usage,
        conversions,
        sampler,
        workers,
        exporter,
    )


def _cardinality_limits(limit: int) -> dict[type, int]:
    # The SDK folds attribute sets beyond 2,000 per collection into one overflow series, which would lose users.
    kinds = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
    return dict.fromkeys(kinds, limit)


def _register_tallies(
    meter: Meter, usage: Tally, conversions: Tally, hand_over_rest: Callable[[int], None], limit: int
) -> None:
    """Create the counters fed from the tallies, and the collection hook that feeds them."""
    usage_counter = meter.create_counter(
        FEATURE_USAGE_METRIC, unit=FEATURE_USAGE_UNIT, description="Uses of a metered feature by a user"
    )
    conversion_counter = meter.create_counter(
        CONVERSION_COUNT_METRIC, unit=CONVERSION_COUNT_UNIT, description=f"Conversions by {CONVERSION_NAME}"
    )

    # Observable callbacks run at the start of every collection, before the counters are read;
    # this one reports nothing itself and only hands the tallied counts to the SDK.
    def hand_over(options: CallbackOptions) -> Iterable[Observation]:
        flush_into(usage, usage_counter.add, limit)
        flush_into(conversions, conversion_counter.add, limit)
        hand_over_rest(limit)
        return ()

    meter.create_observable_gauge(COLLECTION_HOOK, callbacks=[hand_over])


def _register_dropped(meter: Meter, tallies: dict[str, Tally]) -> Callable[[int], None]:
    """Report what the pending bound refused, so a loss is visible to operators and not only in a log.

    Returns the hand-over of each tally's new drops to the counter, to run at each collection after the
    other hand-overs (which may drop).
    """
    counter = meter.create_counter(DROPPED_METRIC, unit=DROPPED_UNIT, description="Counts dropped before export")
    drops = tallies[DROPPED_METRIC]

    def hand_over(limit: int) -> None:
        for name, tally in tallies.items():
            amount = tally.take_drops()
            if amount:
                drops.add((name,), amount)
        flush_into(drops, counter.add, limit)

    return hand_over


def _tracer_provider(settings: PipelineSettings, resource: Resource) -> TracerProvider:
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = _span_exporter(settings.traces)
    provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=settings.export_timeout_millis))
    return provider


def _metric_exporter(exporter: ExporterSettings) -> MetricExporter:
    if exporter.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        return GrpcMetricExporter(
            endpoint=exporter.endpoint,
            headers=exporter.headers,
            timeout=exporter.timeout_seconds,
            preferred_temporality=_DELTA_TEMPORALITY,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    return HttpMetricExporter(
        endpoint=exporter.endpoint,
        headers=exporter.headers,
        timeout=exporter.timeout_seconds,
        preferred_temporality=_DELTA_TEMPORALITY,
    )


def _span_exporter(exporter: ExporterSettings) -> SpanExporter:
    if exporter.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(endpoint=exporter.endpoint, headers=exporter.headers, timeout=exporter.timeout_seconds)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(endpoint=exporter.endpoint, headers=exporter.headers, timeout=exporter.timeout_seconds)


def _package_version() -> str | None:
    try:
        return version("usagemeter-instrumentation")
    except PackageNotFoundError:
        return None
