"""The OpenTelemetry providers and exporters of one metering pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.metrics import Counter as CounterApi
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from usagemeter_instrumentation._config import ExporterSettings, PipelineSettings
from usagemeter_instrumentation._names import (
    FEATURE_USAGE_METRIC,
    FEATURE_USAGE_UNIT,
    INSTRUMENTATION_SCOPE,
    SERVICE_NAME,
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
    counter: CounterApi
    tracer: Tracer

    def force_flush(self, timeout_millis: int) -> bool:
        """Export what has been recorded; ``False`` when an export did not complete."""
        metrics_done = self.meter_provider.force_flush(timeout_millis=timeout_millis)
        spans_done = self.tracer_provider.force_flush(timeout_millis=timeout_millis)
        return bool(metrics_done and spans_done)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Export what is pending and stop the exporters."""
        budget = timeout_millis or self.settings.export_timeout_millis or _DEFAULT_SHUTDOWN_MILLIS
        try:
            self.meter_provider.shutdown(timeout_millis=budget)
        finally:
            self.tracer_provider.shutdown()


def build_pipeline(settings: PipelineSettings) -> Pipeline:
    """Create the meter and tracer providers with exporters for the given settings."""
    attributes = {SERVICE_NAME: settings.service_name} if settings.service_name else {}
    resource = Resource.create(attributes)
    metric_reader = PeriodicExportingMetricReader(
        _metric_exporter(settings.metrics),
        export_interval_millis=settings.export_interval_millis,
        export_timeout_millis=settings.export_timeout_millis,
    )
    meter_provider = _meter_provider(settings, resource, metric_reader)
    tracer_provider = _tracer_provider(settings, resource)
    scope_version = _package_version()
    counter = meter_provider.get_meter(INSTRUMENTATION_SCOPE, scope_version).create_counter(
        FEATURE_USAGE_METRIC, unit=FEATURE_USAGE_UNIT, description="Uses of a metered feature by a user"
    )
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE, scope_version)
    return Pipeline(settings, meter_provider, metric_reader, tracer_provider, counter, tracer)


def _meter_provider(
    settings: PipelineSettings, resource: Resource, reader: PeriodicExportingMetricReader
) -> MeterProvider:
    # The SDK folds attribute sets beyond 2,000 per collection into one overflow series, which would lose users.
    usage_view = View(instrument_name=FEATURE_USAGE_METRIC, aggregation_cardinality_limit=settings.cardinality_limit)
    return MeterProvider(metric_readers=[reader], resource=resource, views=[usage_view], shutdown_on_exit=False)


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
