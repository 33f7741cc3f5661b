"""usagemeter's OTLP collector.

Receives OTLP metrics and spans over gRPC and HTTP (protobuf and JSON, gzip),
validates ``feature.usage`` points, turns cumulative monotonic sums into deltas,
acknowledges a request once it is fsync'd in an on-disk spool, and drains the
spool into the raw ClickHouse tables with deduplicated, retried inserts. It runs inside the caller's
asyncio loop, next to other servers::

    collector = Collector(lambda: connect(url, database), CollectorSettings())
    await collector.start()
    ...
    await collector.stop()
"""

from __future__ import annotations

from usagemeter_collector._checks.cumulative import CumulativeToDelta, Delta, SeriesState, Undo
from usagemeter_collector._checks.row_path import decode_metrics
from usagemeter_collector._checks.rule import TimeWindow
from usagemeter_collector._checks.traces import decode_traces
from usagemeter_collector._collector import Collector
from usagemeter_collector._errors import CollectorError, PayloadError, SpoolFull, StorageUnavailable, Unauthenticated
from usagemeter_collector._schema import METRICS_EXPONENTIAL_HISTOGRAM, METRICS_SUMMARY
from usagemeter_collector._settings import CollectorSettings
from usagemeter_collector._telemetry.counters import Telemetry, first_line

__all__ = [
    "METRICS_EXPONENTIAL_HISTOGRAM",
    "METRICS_SUMMARY",
    "Collector",
    "CollectorError",
    "CollectorSettings",
    "CumulativeToDelta",
    "Delta",
    "PayloadError",
    "SeriesState",
    "SpoolFull",
    "StorageUnavailable",
    "Telemetry",
    "TimeWindow",
    "Unauthenticated",
    "Undo",
    "decode_metrics",
    "decode_traces",
    "first_line",
]
