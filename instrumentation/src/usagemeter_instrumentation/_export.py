"""A metric exporter that gives the counts of a failed export back to their tallies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData, NumberDataPoint

from usagemeter_instrumentation._tally import Key, Tally

_logger = logging.getLogger("usagemeter_instrumentation")


class RestoringExporter(MetricExporter):
    """Delegates to ``inner``; when an export fails, its tallied sums are re-counted for the next one.

    The SDK resets delta sums at every collection, so without this a receiver outage would lose
    the uses of each failed interval. An export whose response is lost after the receiver stored
    it is counted again: delivery is at least once.
    """

    def __init__(self, inner: MetricExporter, scope: str, tallies: Mapping[str, Tally]) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._scope = scope
        self._tallies = tallies

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export through the inner exporter, restoring tallied counts when it fails."""
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            _logger.warning("usagemeter metric export raised; its counts are kept for the next export", exc_info=True)
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            restored = self._restore(metrics_data)
            _logger.warning("usagemeter metric export failed; %d counted uses are kept for the next export", restored)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the inner exporter down."""
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def _restore(self, metrics_data: MetricsData) -> int:
        restored = 0
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                if scope_metrics.scope.name != self._scope:
                    continue
                for metric in scope_metrics.metrics:
                    tally = self._tallies.get(metric.name)
                    if tally is not None:
                        restored += _restore_points(tally, metric.data.data_points)  # type: ignore[arg-type]
        return restored


def _restore_points(tally: Tally, points: list[NumberDataPoint]) -> int:
    items: list[tuple[Key, int]] = [(tally.key_of(point.attributes or {}), int(point.value)) for point in points]
    tally.restore(items)
    return sum(amount for _, amount in items)
