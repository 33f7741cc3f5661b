"""A metric exporter that resends a failed export unchanged, so a receiver that deduplicates counts it once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData, NumberDataPoint

from usagemeter_instrumentation._quantity import Amount, from_point, total
from usagemeter_instrumentation._tally import Key, Tally

_logger = logging.getLogger("usagemeter_instrumentation")


@dataclass
class FailedBatch:
    """An export that failed, kept to be sent again exactly as it was."""

    data: MetricsData
    #: ``time.monotonic()`` when the first attempt started: the receiver stored it, if at all, after that.
    first_sent: float
    #: Tallied counts per metric name, and the data points per metric held under the tallies' bound.
    sums: dict[str, Amount]
    series: dict[str, int]
    resends: int = 0

    @property
    def counts(self) -> Amount:
        """Tallied counts (or quantity) the batch carries."""
        return total(self.sums.values())


class ResendingExporter(MetricExporter):
    """Delegates to ``inner``; a failed export is kept and sent again unchanged, before anything newer.

    A receiver may have stored an export whose answer was lost (a timeout, a dropped connection). The
    failed batch is resent as the same ``MetricsData`` through the same exporter, so the request body is
    byte-identical and a receiver that recognises a resend by a hash of the body (the usagemeter
    collector, within its dedup window) stores it once. One batch waits at a time: while it does, newer
    collections are not sent, and their tallied counts go back to the tallies to be sent after it (never
    sent, they cannot be duplicates). A batch still undelivered when a resend could arrive after the end
    of ``resend_window_seconds`` is given up and counted as dropped, since the receiver would no longer
    recognise it.
    """

    def __init__(
        self, inner: MetricExporter, scope: str, tallies: Mapping[str, Tally], resend_window_seconds: float
    ) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._scope = scope
        self._tallies = tallies
        self._resend_window = resend_window_seconds
        # Held for every send, so the failed batch always goes before a newer one.
        self._lock = threading.Lock()
        self._failed: FailedBatch | None = None
        self._attempts = 0
        self._closed = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Resend the failed batch, then send ``metrics_data``; a failed send is kept for resending."""
        seen = self._attempts
        with self._lock:
            if not self._deliver_failed(seen):
                self._give_back(metrics_data)
                return MetricExportResult.FAILURE
            started = time.monotonic()
            if self._send(metrics_data):
                return MetricExportResult.SUCCESS
            self._keep(metrics_data, started)
            return MetricExportResult.FAILURE

    def resend(self, seen: int | None = None) -> bool:
        """Send the failed batch now; ``True`` when no batch is left waiting (see :meth:`_deliver_failed`)."""
        with self._lock:
            return self._deliver_failed(seen)

    def resend_in_background(self) -> None:
        """Resend the failed batch on a thread of its own, unless none waits or a send is under way.

        The SDK's reader exports only collections that hold data, so without this a process gone
        idle would keep its failed batch until the dedup window ran out.
        """
        if self._failed is None or self._closed or self._lock.locked():
            return
        seen = self._attempts
        threading.Thread(target=self.resend, args=(seen,), name="usagemeter-resend", daemon=True).start()

    def failed_once(self) -> bool:
        """Whether a batch waits that has not been resent yet."""
        failed = self._failed
        return failed is not None and failed.resends == 0

    def pending(self) -> Amount:
        """Tallied counts of the batch waiting to be resent."""
        failed = self._failed
        return failed.counts if failed is not None else 0

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the inner exporter down; a batch still waiting is reported by the pipeline."""
        self._closed = True
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def _deliver_failed(self, seen: int | None) -> bool:
        """Resend the failed batch; ``True`` when none waits any more.

        With ``seen``, a send attempted since then (while this caller waited for the lock) stands for
        this one, so one collection does not wait for two timeouts.
        """
        failed = self._failed
        if failed is None:
            return True
        if seen is not None and seen != self._attempts:
            return False
        if time.monotonic() - failed.first_sent >= self._resend_window:
            self._forget(failed)
            self._drop(failed, "it could not be delivered within the collector's dedup window")
            return True
        failed.resends += 1
        if not self._send(failed.data):
            return False
        self._forget(failed)
        _logger.info("usagemeter delivered a resent metric export (%s counts)", failed.counts)
        return True

    def _send(self, metrics_data: MetricsData) -> bool:
        self._attempts += 1
        try:
            return self._inner.export(metrics_data) is MetricExportResult.SUCCESS
        except Exception:
            _logger.warning("usagemeter metric export raised", exc_info=True)
            return False

    def _keep(self, metrics_data: MetricsData, started: float) -> None:
        """Hold a failed batch for resending, if its series fit under the tallies' bound."""
        sums: dict[str, Amount] = {}
        series: dict[str, int] = {}
        for name, points in self._tallied_points(metrics_data):
            sums[name] = sums.get(name, 0) + total(from_point(point.value) for point in points)
            series[name] = series.get(name, 0) + len(points)
        batch = FailedBatch(metrics_data, started, sums, series)
        reserved: list[str] = []
        for name, count in series.items():
            if not self._tallies[name].reserve(count):
                for done in reserved:
                    self._tallies[done].release(series[done])
                self._drop(batch, "its series do not fit under max_pending_series")
                return
            reserved.append(name)
        self._failed = batch
        _logger.warning("usagemeter metric export failed; it is kept and resent unchanged (%s counts)", batch.counts)

    def _forget(self, batch: FailedBatch) -> None:
        for name, count in batch.series.items():
            self._tallies[name].release(count)
        self._failed = None

    def _drop(self, batch: FailedBatch, reason: str) -> None:
        for name, amount in batch.sums.items():
            self._tallies[name].drop(amount)
        _logger.warning("usagemeter dropped a failed metric export of %s counts: %s", batch.counts, reason)

    def _give_back(self, metrics_data: MetricsData) -> None:
        """Return the counts of a batch that was never sent to their tallies, to go with a later export."""
        for name, points in self._tallied_points(metrics_data):
            tally = self._tallies[name]
            items: list[tuple[Key, Amount]] = [(tally.key_of(p.attributes or {}), from_point(p.value)) for p in points]
            tally.restore(items)

    def _tallied_points(self, metrics_data: MetricsData) -> Iterator[tuple[str, list[NumberDataPoint]]]:
        """(metric name, points) of every metric of the instrumentation's scope fed from a tally."""
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                if scope_metrics.scope.name != self._scope:
                    continue
                for metric in scope_metrics.metrics:
                    if metric.name in self._tallies:
                        yield metric.name, list(metric.data.data_points)  # type: ignore[arg-type]
