"""The collector's own telemetry, reported as OTLP metrics through its own ingest (spool and writer).

Every interval the counters' growth since the last stored report becomes one export request of
delta sums, gauges and an insert latency histogram. A report that could not be spooled (spool
full or unwritable, shutting down) is folded into the next one, so the deltas still add up to the
counters: the write errors of a full disk are reported once it has room again.
Reports are left out of the request and item counters they carry; their rows and inserts are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
)

from usagemeter_collector._errors import StorageUnavailable
from usagemeter_collector._ingest import METRICS_SIGNAL, Ingest, content_digest
from usagemeter_collector._spool.segments import write_durably
from usagemeter_collector._spool.spool import Spool
from usagemeter_collector._telemetry import INSERT_DURATION_BOUNDS, SERVICE_NAME, InsertStats, Telemetry

logger = logging.getLogger(__name__)

SCOPE_NAME = "usagemeter_collector"
OUTCOME = "outcome"

#: (metric, unit, outcome or "", Telemetry counter): each becomes a monotonic delta sum.
COUNTERS = (
    ("usagemeter.collector.requests", "{request}", "received", "requests_received"),
    ("usagemeter.collector.requests", "{request}", "duplicate", "requests_duplicate"),
    ("usagemeter.collector.requests", "{request}", "refused", "requests_refused"),
    ("usagemeter.collector.items", "{item}", "accepted", "items_accepted"),
    ("usagemeter.collector.items", "{item}", "rejected", "items_rejected"),
    ("usagemeter.collector.spooled_bytes", "By", "", "spooled_bytes"),
    ("usagemeter.collector.rows_inserted", "{row}", "", "rows_inserted"),
    ("usagemeter.collector.inserts", "{insert}", "", "inserts"),
    ("usagemeter.collector.insert_retries", "{retry}", "", "insert_retries"),
    ("usagemeter.collector.segments_quarantined", "{segment}", "", "segments_quarantined"),
    ("usagemeter.collector.cumulative_series_refused", "{point}", "", "cumulative_series_refused"),
    ("usagemeter.collector.spool_write_errors", "{error}", "", "spool_write_errors"),
    ("usagemeter.collector.spool_records_damaged", "{record}", "", "spool_records_damaged"),
    ("usagemeter.collector.state_files_quarantined", "{file}", "", "state_files_quarantined"),
)
SPOOL_BYTES = "usagemeter.collector.spool_bytes"
SPOOL_SEGMENTS = "usagemeter.collector.spool_segments"
SPOOL_WRITABLE = "usagemeter.collector.spool_writable"
OLDEST_UNSENT_AGE = "usagemeter.collector.oldest_unsent_age"
INSERT_DURATION = "usagemeter.collector.insert_duration"


#: The file in the spool directory that keeps the collector's instance id across restarts.
INSTANCE_FILE = "instance"


def instance_id(spool_dir: Path) -> str:
    """The collector's identity, kept in its spool directory: a restarted collector reports as the same instance.

    The spool belongs to one collector at a time and its backlog outlives a restart, so it is what an
    instance is; the first start names it after the host, with a random part (two spools on one host differ).
    """
    path = spool_dir / INSTANCE_FILE
    with contextlib.suppress(FileNotFoundError):
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    made = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
    try:
        write_durably(path, made.encode())
    except OSError as exc:
        # Only the identity across restarts is at stake; this run still reports under the new name.
        logger.warning("cannot keep the collector's instance id in %s: %s", path, exc)
    return made


@dataclass(frozen=True)
class Reading:
    """The collector's figures at one moment."""

    time_ns: int
    counters: dict[str, int]
    inserts: InsertStats
    spool_bytes: int
    spool_segments: int
    spool_writable: int
    oldest_unsent_age: int = 0


def take_reading(telemetry: Telemetry, spool: Spool) -> Reading:
    """The figures now; starts a new interval for the fastest and slowest insert."""
    counters = {counter: int(getattr(telemetry, counter)) for *_, counter in COUNTERS}
    stats = telemetry.take_insert_stats()
    age = round(telemetry.oldest_unsent_age_seconds)
    return Reading(
        time.time_ns(), counters, stats, telemetry.spool_bytes, spool.segments, telemetry.spool_writable, age
    )


def _zero_reading() -> Reading:
    """The figures of a collector that has done nothing yet, as of now."""
    inserts = InsertStats(0, 0, 0.0, (0,) * (len(INSERT_DURATION_BOUNDS) + 1), math.inf, -math.inf)
    return Reading(time.time_ns(), {counter: 0 for *_, counter in COUNTERS}, inserts, 0, 0, 1)


def _attributes(values: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=AnyValue(string_value=value)) for key, value in values.items()]


def _sums(previous: Reading, current: Reading) -> list[Metric]:
    metrics: dict[str, Metric] = {}
    for name, unit, outcome, counter in COUNTERS:
        metric = metrics.setdefault(name, Metric(name=name, unit=unit))
        metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        metric.sum.is_monotonic = True
        point = metric.sum.data_points.add(start_time_unix_nano=previous.time_ns, time_unix_nano=current.time_ns)
        point.as_int = current.counters[counter] - previous.counters[counter]
        point.attributes.extend(_attributes({OUTCOME: outcome} if outcome else {}))
    return list(metrics.values())


def _gauges(current: Reading) -> list[Metric]:
    def gauge(name: str, unit: str, value: int) -> Metric:
        point = NumberDataPoint(time_unix_nano=current.time_ns, as_int=value)
        return Metric(name=name, unit=unit, gauge=Gauge(data_points=[point]))

    return [
        gauge(SPOOL_BYTES, "By", current.spool_bytes),
        gauge(SPOOL_SEGMENTS, "{segment}", current.spool_segments),
        gauge(SPOOL_WRITABLE, "1", current.spool_writable),
        gauge(OLDEST_UNSENT_AGE, "s", current.oldest_unsent_age),
    ]


def _insert_duration(previous: Reading, current: Reading, fastest: float, slowest: float) -> Metric:
    before, now = previous.inserts, current.inserts
    point = HistogramDataPoint(
        start_time_unix_nano=previous.time_ns,
        time_unix_nano=current.time_ns,
        count=now.inserts - before.inserts,
        sum=now.seconds - before.seconds,
        bucket_counts=[a - b for a, b in zip(now.bucket_counts, before.bucket_counts, strict=True)],
        explicit_bounds=INSERT_DURATION_BOUNDS,
    )
    if point.count:
        point.min, point.max = fastest, slowest
    temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    histogram = Histogram(data_points=[point], aggregation_temporality=temporality)
    return Metric(name=INSERT_DURATION, unit="s", histogram=histogram)


def build_report(previous: Reading, current: Reading, instance: str, extremes: tuple[float, float]) -> bytes:
    """The export request (protobuf) of what happened between two readings; ``extremes`` = fastest, slowest insert."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource = {"service.name": SERVICE_NAME, "service.instance.id": instance, "host.name": socket.gethostname()}
    resource_metrics.resource.attributes.extend(_attributes(resource))
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = SCOPE_NAME
    scope_metrics.metrics.extend(_sums(previous, current) + _gauges(current))
    scope_metrics.metrics.append(_insert_duration(previous, current, *extremes))
    return request.SerializeToString()


class SelfReporter:
    """Reports the collector's telemetry into its own ingest every ``interval`` seconds while started."""

    def __init__(self, telemetry: Telemetry, spool: Spool, ingest: Ingest, interval: float, instance: str) -> None:
        self.instance = instance
        self._telemetry = telemetry
        self._spool = spool
        self._ingest = ingest
        self._interval = interval
        self._previous: Reading | None = None
        self._extremes = (math.inf, -math.inf)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reporting (in the running event loop).

        The first report counts from zero, so it also carries what the collector counted while it started:
        records lost to damage found on recovery, inserts of segments an earlier run left.
        """
        self._previous = _zero_reading()
        self._extremes = (math.inf, -math.inf)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic reports and send a last one (while the spool still takes records)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.report()

    async def report(self) -> bool:
        """Spool one report of the figures' growth since the last spooled one; False if it could not be spooled."""
        if self._previous is None:
            raise RuntimeError("self-telemetry is not started")
        current = take_reading(self._telemetry, self._spool)
        fastest, slowest = self._extremes
        extremes = (min(fastest, current.inserts.fastest), max(slowest, current.inserts.slowest))
        body = build_report(self._previous, current, self.instance, extremes)
        request = ExportMetricsServiceRequest.FromString(body)
        try:
            await self._ingest.export_metrics(request, content_digest(METRICS_SIGNAL, body), body, counted=False)
        except StorageUnavailable as exc:
            # The growth stays unreported and is carried by the next report.
            self._extremes = extremes
            logger.warning("collector self-telemetry not spooled: %s", exc)
            return False
        self._previous, self._extremes = current, (math.inf, -math.inf)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.report()
            except Exception:
                logger.exception("collector self-telemetry report failed")
