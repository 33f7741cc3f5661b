"""The collector's own counters, rendered in the Prometheus text exposition format for GET /metrics."""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from usagemeter_collector._health import CollectorStatus, error_code

#: The service the collector's own telemetry is stored under (self-report and failure beacon).
SERVICE_NAME = "usagemeter-collector"

_PREFIX = "usagemeter_collector_"

_HELP = {
    "requests_received": ("counter", "Export requests received."),
    "requests_duplicate": ("counter", "Export requests answered as resends of an already spooled request."),
    "requests_refused": ("counter", "Export requests refused (bad payload, authentication, spool full)."),
    "items_accepted": ("counter", "Data points and spans accepted into the spool."),
    "items_rejected": ("counter", "Data points and spans rejected through partial success."),
    "spooled_bytes": ("counter", "Bytes written to spool segments."),
    "rows_inserted": ("counter", "Rows committed to ClickHouse."),
    "inserts": ("counter", "Inserts committed to ClickHouse."),
    "insert_retries": ("counter", "Failed insert attempts that will be retried."),
    "segments_quarantined": ("counter", "Spool segments ClickHouse refused as unstorable, moved aside."),
    "insert_seconds_total": ("counter", "Time spent in committed inserts."),
    "cumulative_series_refused": ("counter", "Cumulative points refused because the series limit was reached."),
    "state_files_quarantined": ("counter", "Damaged spool state files (snapshot, sidecars) moved aside at start."),
    "spool_write_errors": ("counter", "Failed writes, fsyncs or creations of spool segments (their requests refused)."),
    "spool_records_damaged": ("counter", "Acknowledged spool records lost to damaged bytes (moved to unstorable/)."),
    "spool_bytes": ("gauge", "Bytes currently held in the spool."),
    "cumulative_series": ("gauge", "Cumulative series whose last spooled state is tracked."),
    "spool_writable": ("gauge", "1 while the spool can write, 0 since its last write failed."),
    "spool_unwritable_since_seconds": ("gauge", "Unix time the spool stopped being writable; 0 while it is."),
    "insert_failing": ("gauge", "1 from a failed insert or ClickHouse connection until an insert or connection works."),
    "insert_failing_since_seconds": ("gauge", "Unix time inserts started failing; 0 while they succeed."),
    "oldest_unsent_age_seconds": ("gauge", "Age of the oldest spooled data not yet in ClickHouse; 0 when none."),
    "oldest_unsent_since_seconds": (
        "gauge",
        "Unix time the oldest spool segment not yet in ClickHouse was created; 0 when none.",
    ),
}

#: Upper bounds (seconds) of the insert latency histogram's buckets.
INSERT_DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class InsertStats:
    """The committed inserts at one moment: cumulative counts, and the extremes since the previous reading."""

    inserts: int
    rows: int
    seconds: float
    bucket_counts: tuple[int, ...]
    fastest: float
    slowest: float


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The line of an error that says what went wrong, at most ``limit`` characters: what health shows of it.

    That is ClickHouse's own message from its ``Code: …`` on when the error carries one (what the driver puts
    before it names only the URL and the status), otherwise the first non-empty line.
    """
    lines = [line.strip() for line in (str(error) or repr(error)).splitlines() if line.strip()] or [repr(error)]
    coded = [line[line.index("Code: ") :] for line in lines if "Code: " in line]
    return (coded or lines)[0][:limit]


def _label(value: str) -> str:
    # Prometheus label values escape backslash, quote and newline.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


@dataclass
class Telemetry:
    """Plain counters; each is written by one thread, so no lock is needed for exposition.

    The insert figures are updated together under a lock, so that one reading of them is consistent.
    """

    requests_received: int = 0
    requests_duplicate: int = 0
    requests_refused: int = 0
    items_accepted: int = 0
    items_rejected: int = 0
    spooled_bytes: int = 0
    rows_inserted: int = 0
    inserts: int = 0
    insert_retries: int = 0
    segments_quarantined: int = 0
    insert_seconds_total: float = 0.0
    cumulative_series_refused: int = 0
    state_files_quarantined: int = 0
    spool_bytes: int = 0
    cumulative_series: int = 0
    spool_write_errors: int = 0
    spool_records_damaged: int = 0
    spool_unwritable_since_seconds: float = 0.0
    spool_last_error: str = ""
    insert_failing_since_seconds: float = 0.0
    insert_last_error: str = ""
    #: The kind of the last failed insert's error without its text (error_code), for unauthenticated health.
    insert_error_code: str = ""
    #: Creation time (unix ns) of the oldest spool segment not yet inserted; 0 when the spool holds none.
    oldest_unsent_ns: int = 0
    _buckets: list[int] = field(default_factory=lambda: [0] * (len(INSERT_DURATION_BOUNDS) + 1), repr=False)
    _fastest: float = field(default=math.inf, repr=False)
    _slowest: float = field(default=-math.inf, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spool_writable(self) -> int:
        """1 while the spool can write, 0 from a failed write until the next write succeeds."""
        return int(not self.spool_unwritable_since_seconds)

    def spool_write_failed(self, error: str) -> None:
        """Count a failed spool write; the spool is unwritable from the first failure until a write succeeds."""
        self.spool_write_errors += 1
        self.spool_last_error = error
        if not self.spool_unwritable_since_seconds:
            self.spool_unwritable_since_seconds = time.time()

    def spool_write_succeeded(self) -> None:
        """The spool wrote and fsync'd again."""
        self.spool_unwritable_since_seconds = 0.0

    @property
    def insert_failing(self) -> int:
        """1 from a failed insert or connection attempt until an insert commits or a connection opens."""
        return int(bool(self.insert_failing_since_seconds))

    @property
    def oldest_unsent_age_seconds(self) -> float:
        """How long the oldest spooled data not yet in ClickHouse has waited (0 when there is none)."""
        oldest = self.oldest_unsent_ns
        return round(max(time.time() - oldest / 1e9, 0.0), 3) if oldest else 0.0

    @property
    def oldest_unsent_since_seconds(self) -> float:
        """Unix time the oldest segment not yet in ClickHouse was created (0 when there is none): data acknowledged
        before a moment is all inserted once this is 0 or later than that moment."""
        return self.oldest_unsent_ns / 1e9

    def insert_failed(self, error: BaseException, context: str = "") -> None:
        """An insert or a connection to ClickHouse failed (``context`` says which); the data stays spooled."""
        self.insert_last_error = context + first_line(error)
        self.insert_error_code = error_code(error)
        if not self.insert_failing_since_seconds:
            self.insert_failing_since_seconds = time.time()

    def insert_succeeded(self) -> None:
        """An insert committed (or a connection opened): ClickHouse takes data again."""
        self.insert_failing_since_seconds = 0.0

    def status(self, unsent_degraded_seconds: float = math.inf) -> CollectorStatus:
        """What the collector's health depends on, now; unsent data older than ``unsent_degraded_seconds`` is a
        reason to be degraded."""
        since, failing = self.spool_unwritable_since_seconds, self.insert_failing_since_seconds
        return CollectorStatus(
            spool_writable=bool(self.spool_writable),
            spool_unwritable_since=datetime.fromtimestamp(since, UTC) if since else None,
            spool_last_error=self.spool_last_error or None,
            spool_write_errors=self.spool_write_errors,
            spool_records_damaged=self.spool_records_damaged,
            state_files_quarantined=self.state_files_quarantined,
            insert_failing_since=datetime.fromtimestamp(failing, UTC) if failing else None,
            insert_last_error=self.insert_last_error or None,
            oldest_unsent_age_seconds=self.oldest_unsent_age_seconds,
            insert_error_code=self.insert_error_code or None,
            unsent_degraded_seconds=unsent_degraded_seconds,
        )

    def record_insert(self, seconds: float, rows: int) -> None:
        """Count one committed insert of ``rows`` rows that took ``seconds``."""
        with self._lock:
            self.inserts += 1
            self.rows_inserted += rows
            self.insert_seconds_total += seconds
            self._buckets[bisect.bisect_left(INSERT_DURATION_BOUNDS, seconds)] += 1
            self._fastest = min(self._fastest, seconds)
            self._slowest = max(self._slowest, seconds)

    def take_insert_stats(self) -> InsertStats:
        """The insert figures now; the fastest and slowest insert start over from here."""
        with self._lock:
            stats = InsertStats(
                self.inserts,
                self.rows_inserted,
                self.insert_seconds_total,
                tuple(self._buckets),
                self._fastest,
                self._slowest,
            )
            self._fastest, self._slowest = math.inf, -math.inf
        return stats

    def render(self) -> str:
        """The counters as Prometheus text."""
        lines = []
        for key, (kind, help_text) in _HELP.items():
            name = _PREFIX + key
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {getattr(self, key)}"]
        if self.spool_last_error:
            name = _PREFIX + "spool_last_write_error"
            lines += [
                f"# HELP {name} The last failed spool write's error (label); 1 while the spool cannot write.",
                f"# TYPE {name} gauge",
                f'{name}{{error="{_label(self.spool_last_error)}"}} {1 - self.spool_writable}',
            ]
        if self.insert_last_error:
            name = _PREFIX + "insert_last_error"
            lines += [
                f"# HELP {name} The last failed insert's error (label); 1 while inserts fail.",
                f"# TYPE {name} gauge",
                f'{name}{{error="{_label(self.insert_last_error)}"}} {self.insert_failing}',
            ]
        return "\n".join(lines) + "\n"
