"""Host services as the raw OpenTelemetry SDK builds them, each counting the uses it adds.

A :class:`CountingSender` is one ``MeterProvider`` exporting ``feature.usage`` to one collector over
OTLP/gRPC or OTLP/HTTP with delta or cumulative temporality, with the SDK's own retries; it keeps
the exact total it added per user, which is what the pipeline must end up storing. A
:class:`SenderLoad` keeps several of them adding from threads until it is stopped.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import Counter as SdkCounter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from tests.server.processes import INGEST_TOKEN, Collector

Protocol = Literal["grpc", "http"]
Temporality = Literal["delta", "cumulative"]

#: The metered feature the senders count (a key of the shipped plans).
FEATURE = "ai_content_generation"
#: How long the SDK keeps retrying one export (its backoff doubles from 1 s), long enough to outlast a
#: collector's restart; the SDK's default of 10 s gives up after about 7 s of retries.
EXPORT_TIMEOUT_SECONDS = 60


class _ResultCountingExporter(MetricExporter):
    """The SDK's OTLP exporter, unchanged, with the outcome of every export counted."""

    def __init__(self, inner: MetricExporter, temporality: AggregationTemporality) -> None:
        super().__init__(preferred_temporality={SdkCounter: temporality})
        self.inner = inner
        self.results: Counter[str] = Counter()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results[result.name] += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _otlp_exporter(collector: Collector, protocol: Protocol) -> MetricExporter:
    headers = {"authorization": f"Bearer {INGEST_TOKEN}"}
    if protocol == "grpc":
        endpoint = f"http://{collector.grpc_endpoint}"
        return GrpcMetricExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=EXPORT_TIMEOUT_SECONDS)
    endpoint = f"{collector.http_endpoint}/v1/metrics"
    return HttpMetricExporter(endpoint=endpoint, headers=headers, timeout=EXPORT_TIMEOUT_SECONDS)


class CountingSender:
    """A host service's ``feature.usage`` counter on the raw SDK, exporting to ``collector`` periodically."""

    def __init__(
        self,
        collector: Collector,
        protocol: Protocol,
        temporality: Temporality,
        name: str,
        export_interval_millis: int = 500,
    ) -> None:
        self.name = f"{name} ({protocol}, {temporality}) → {collector.name}"
        kind = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
        self.exporter = _ResultCountingExporter(_otlp_exporter(collector, protocol), kind)
        self._reader = PeriodicExportingMetricReader(self.exporter, export_interval_millis=export_interval_millis)
        resource = Resource.create({"service.name": name})
        self._provider = MeterProvider(metric_readers=[self._reader], resource=resource)
        self._counter = self._provider.get_meter("usagemeter-tests").create_counter("feature.usage", unit="{use}")
        self.counted: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closed = False

    def add(self, user: str, amount: int) -> None:
        """Count ``amount`` uses of :data:`FEATURE` by ``user``."""
        with self._lock:
            self._counter.add(amount, {"user.id": user, "feature.key": FEATURE})
            self.counted[user] += amount

    def close(self) -> None:
        """Export what is still counted and shut the SDK down; raises if an export failed for good."""
        assert self._reader.force_flush(timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000), f"{self.name}: flush failed"
        self.abandon()
        failed = self.exporter.results[MetricExportResult.FAILURE.name]
        # A failed delta export is data the SDK dropped: exactness could not hold, and the reason is here.
        assert failed == 0, f"{self.name}: {failed} exports failed for good ({dict(self.exporter.results)})"

    def abandon(self) -> None:
        """Shut the SDK down (once), exporting what it can within a few seconds."""
        if not self._closed:
            self._closed = True
            self._provider.shutdown(timeout_millis=5_000)


class SenderLoad:
    """Senders adding uses of random users from one thread each until :meth:`stop`."""

    def __init__(self, senders: Sequence[CountingSender], users: Sequence[str], seed: int = 7) -> None:
        self.senders = list(senders)
        self._users = list(users)
        self._seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, pause_seconds: float = 0.005) -> None:
        """Start adding: each sender a random 1 to 5 uses of a random user every ``pause_seconds``."""
        for number, sender in enumerate(self.senders):
            rng = random.Random(self._seed + number)
            thread = threading.Thread(target=self._run, args=(sender, rng, pause_seconds), name=sender.name)
            thread.start()
            self._threads.append(thread)

    def _run(self, sender: CountingSender, rng: random.Random, pause_seconds: float) -> None:
        while not self._stop.wait(pause_seconds):
            sender.add(rng.choice(self._users), rng.randint(1, 5))

    def stop(self) -> dict[str, int]:
        """Stop adding, export the rest, and return each user's total over all senders."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for sender in self.senders:
            sender.close()
        return dict(sum((sender.counted for sender in self.senders), Counter()))

    def stop_quietly(self) -> None:
        """Stop adding and shut every sender down without checking anything (cleanup after a failure)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for sender in self.senders:
            sender.abandon()


def send_usage(endpoint: str, uses: dict[str, int]) -> None:
    """Count ``uses`` per user through the real OTel SDK over gRPC (delta), then flush and shut down."""
    exporter = GrpcMetricExporter(
        endpoint=f"http://{endpoint}",
        insecure=True,
        headers={"authorization": f"Bearer {INGEST_TOKEN}"},
        preferred_temporality={SdkCounter: AggregationTemporality.DELTA},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "backend"}))
    counter = provider.get_meter("server-tests").create_counter("feature.usage")
    for user, amount in uses.items():
        counter.add(amount, {"user.id": user, "feature.key": FEATURE})
    assert reader.force_flush(timeout_millis=30_000)
    provider.shutdown()
