"""Drains sealed spool segments into ClickHouse from one thread that owns its client.

Each segment is one batch: its metrics requests are inserted as length-delimited
protobuf into the landing table of each metric kind they hold, and its rows
table by table, in chunks, each with an ``insert_deduplication_token`` derived
from the segment name, the table and the chunk number. A retry of the same segment (after an error, or
after a crash between commit and delete) is therefore a no-op in ClickHouse,
and the segment is deleted only once every insert committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from usagemeter_clickhouse import release_freed_memory
from usagemeter_collector import _schema
from usagemeter_collector._drain.beacon import FailureBeacon
from usagemeter_collector._drain.landing import KIND_ORDER, LANDING_TABLES, length_delimited
from usagemeter_collector._drain.read_ahead import SegmentContents, SegmentReader
from usagemeter_collector._spool.records import MetricsRequest
from usagemeter_collector._spool.segments import QUARANTINE_DIR, keep_aside
from usagemeter_collector._spool.spool import Spool
from usagemeter_collector._telemetry import Telemetry, first_line

logger = logging.getLogger(__name__)

#: Settings of every insert: retries are deduplicated down to the views' tables; the raw tables' skip
#: indexes are built when ClickHouse merges parts rather than on the ingest path; and the rollups' rows,
#: which their views already grouped, are not collapsed a second time at insert (readers sum them anyway).
INSERT_SETTINGS = {
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "materialize_skip_indexes_on_insert": 0,
    "optimize_on_insert": 0,
}


#: Longest wait between attempts while the collector drains for its stop: its deadline is short.
DRAIN_RETRY_SECONDS = 0.5

#: Inserts at least this large leave enough freed memory in the embedded engine to give back at once.
RELEASE_MEMORY_AFTER_BYTES = 1024 * 1024


def _release_memory(client: Client) -> None:
    try:
        release_freed_memory(client)
    except Exception as exc:
        # Only memory is at stake, never data; the writer tries again the next time it catches up.
        logger.warning("could not release the engine's freed memory: %s", exc)


class SpoolWriter:
    """Inserts sealed segments oldest first, retrying with exponential backoff while ClickHouse fails."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        spool: Spool,
        telemetry: Telemetry,
        max_rows: int,
        backoff: tuple[float, float],
        format_schema: str,
        max_insert_bytes: int,
    ) -> None:
        self._client_factory = client_factory
        self._spool = spool
        self._telemetry = telemetry
        self._max_rows = max_rows
        self._format_schema = format_schema
        self._max_insert_bytes = max_insert_bytes
        self._initial_backoff, self._max_backoff = backoff
        #: Set before start() to report failing inserts past the stuck spool.
        self.beacon: FailureBeacon | None = None
        self._stop = threading.Event()
        # Cuts a backoff short: set when the collector starts draining for its stop.
        self._wake = threading.Event()
        self._draining = False
        self._first_attempt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread and wait for its first attempt to open a client; while ClickHouse is
        unreachable it goes on trying in the background."""
        self._thread = threading.Thread(target=self._run, name="usagemeter-collector-writer", daemon=True)
        self._thread.start()
        self._first_attempt.wait()

    def stop(self, grace_seconds: float) -> None:
        """Insert what the spool holds for up to ``grace_seconds``, then end; the rest stays spooled."""
        deadline = time.monotonic() + grace_seconds
        # From here on a failed attempt is retried soon, so a returning server is used before the deadline.
        self._draining = True
        self._wake.set()
        while not self._spool.empty and time.monotonic() < deadline and self._alive():
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        client = self._open_client()
        if client is None:
            return
        reader = SegmentReader(self._spool)
        reader.start()
        memory_to_release = False
        try:
            while not self._stop.is_set():
                segment = reader.next(timeout=0.1)
                if segment is not None:
                    self._drain_until_stored(client, segment)
                    memory_to_release |= segment.size >= RELEASE_MEMORY_AFTER_BYTES
                elif memory_to_release:
                    # Caught up: the memory is given back now, never between two inserts of a backlog,
                    # where the next insert would only have to fault it in again.
                    _release_memory(client)
                    memory_to_release = False
        finally:
            reader.stop()
            client.close()

    def _drain_until_stored(self, client: Client, segment: SegmentContents) -> None:
        """Insert ``segment``, retrying with exponential backoff until it is stored or the writer stops."""
        backoff = self._initial_backoff
        while not self._drain(client, segment):
            self._telemetry.insert_retries += 1
            if self.beacon is not None:
                self.beacon.failing(client)
            if self._pause(backoff):
                return
            backoff = self._next_backoff(backoff)

    def _open_client(self) -> Client | None:
        """The writer's client, once ClickHouse answers; None when the writer is stopped first."""
        backoff = self._initial_backoff
        while True:
            try:
                client = self._client_factory()
            except Exception as exc:
                self._telemetry.insert_failed(exc, "cannot connect to ClickHouse: ")
                logger.warning(
                    "ClickHouse unreachable or refusing the collector (%s); exports are kept in the spool "
                    "(%d bytes held), retrying in %.1f s",
                    first_line(exc),
                    self._telemetry.spool_bytes,
                    backoff,
                )
            else:
                # Connected: the failure is over unless the next insert says otherwise.
                self._telemetry.insert_succeeded()
                logger.info("connected to ClickHouse")
                return client
            finally:
                self._first_attempt.set()
            if self._pause(backoff):
                return None
            backoff = self._next_backoff(backoff)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (less once the stop's drain begins); True when the writer must end."""
        self._wake.wait(seconds)
        self._wake.clear()
        return self._stop.is_set()

    def _next_backoff(self, backoff: float) -> float:
        if self._draining:
            return min(self._initial_backoff, DRAIN_RETRY_SECONDS)
        return min(backoff * 2, self._max_backoff)

    def _drain(self, client: Client, segment: SegmentContents) -> bool:
        """Insert one segment and release it; False when ClickHouse failed and the segment must be retried."""
        name = segment.name
        try:
            for table in _schema.INSERT_ORDER:
                if table == _schema.METRICS_SUM:
                    self._insert_requests(client, name, segment.requests)
                if table in segment.columns:
                    self._insert(client, name, table, segment.columns[table])
        except DataError as exc:
            logger.error("ClickHouse cannot store segment %s, moving it to %s: %s", name, QUARANTINE_DIR, exc)
            return self._quarantine(name)
        except Exception as exc:
            self._telemetry.insert_failed(exc)
            logger.warning(
                "insert of spool segment %s failed; kept spooled (%d bytes held, oldest %.0f s old), retrying: %s",
                name,
                self._telemetry.spool_bytes,
                self._telemetry.oldest_unsent_age_seconds,
                first_line(exc),
            )
            return False
        self._telemetry.insert_succeeded()
        self._spool.release(name)
        return True

    def _insert(self, client: Client, segment: str, table: str, columns: list[list[Any]]) -> None:
        names = _schema.COLUMNS[table]
        rows = len(columns[0])
        for number, offset in enumerate(range(0, rows, self._max_rows)):
            chunk = [column[offset : offset + self._max_rows] for column in columns]
            settings = INSERT_SETTINGS | {"insert_deduplication_token": f"{segment}:{table}:{number}"}
            started = time.perf_counter()
            client.insert(table, chunk, column_names=names, column_oriented=True, settings=settings)
            self._telemetry.record_insert(time.perf_counter() - started, len(chunk[0]))

    def _insert_requests(self, client: Client, segment: str, requests: list[MetricsRequest]) -> None:
        """Each kind's requests into its landing table, in chunks of at most ``max_insert_bytes``."""
        for kind in KIND_ORDER:
            table = LANDING_TABLES[kind]
            holding = [request for request in requests if kind in request.kinds]
            for number, chunk in enumerate(_chunks(holding, self._max_insert_bytes)):
                settings = INSERT_SETTINGS | {
                    "insert_deduplication_token": f"{segment}:{table}:{number}",
                    "format_schema": self._format_schema,
                }
                started = time.perf_counter()
                block = length_delimited(request.body for request in chunk)
                client.raw_insert(table, insert_block=block, fmt="Protobuf", settings=settings)
                # A request's points are counted once, with the last of its kinds' inserts.
                completed = sum(request.points for request in chunk if _last_kind(request) == kind)
                self._telemetry.record_insert(time.perf_counter() - started, completed)

    def _quarantine(self, name: str) -> bool:
        """Move the segment aside; False (to be tried again) while the copy cannot be written, e.g. on a full disk."""
        source = self._spool.segment_path(name)
        try:
            keep_aside(self._spool.directory, source.name, source.read_bytes())
        except OSError as exc:
            logger.error("cannot move spool segment %s to %s, will retry: %s", name, QUARANTINE_DIR, exc)
            return False
        self._telemetry.segments_quarantined += 1
        self._spool.release(name)
        return True


def _last_kind(request: MetricsRequest) -> str:
    return max(request.kinds, key=KIND_ORDER.index)


def _chunks(requests: list[MetricsRequest], max_bytes: int) -> list[list[MetricsRequest]]:
    """Consecutive runs of requests of at most ``max_bytes`` (a larger request is a chunk of its own)."""
    chunks: list[list[MetricsRequest]] = []
    size = max_bytes
    for request in requests:
        if size + len(request.body) > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(request)
        size += len(request.body)
    return chunks
