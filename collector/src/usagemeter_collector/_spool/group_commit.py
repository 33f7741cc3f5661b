"""The spool's append thread: queued records written and fsync'd as one group, then acknowledged.

One thread appends the queued records of all requests, fsyncs once for the group and then
resolves their futures; only then are the requests' hashes and series updates folded into the
durable state, so a refused request is never taken for spooled. A failed write, fsync or segment
creation refuses the requests it touched as retryable; the thread lives on. The thread also seals
segments by size or age. :class:`~usagemeter_collector._spool.spool.Spool` runs it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from usagemeter_collector._errors import SpoolWriteFailed, StorageUnavailable
from usagemeter_collector._spool.appending import SegmentAppender
from usagemeter_collector._spool.records import SeriesUpdate
from usagemeter_collector._spool.state import DurableState, StateLimits
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpoolLimits:
    """How large the spool and its segments may grow and how long a record waits for its segment to seal."""

    max_bytes: int
    segment_bytes: int
    seal_after_seconds: float
    dedup_window_seconds: float
    #: How long idle cumulative series are remembered and how many request hashes are kept.
    state: StateLimits = field(default_factory=StateLimits)


@dataclass(eq=False)
class Append:
    """One queued record (framed), its request's hash and series updates, and the future its request awaits."""

    body: bytes
    digest: bytes
    updates: list[SeriesUpdate]
    future: Future[bool]


class GroupCommit:
    """The append thread's loop and write path, over the queue and segments a :class:`Spool` sets up."""

    _limits: SpoolLimits
    _telemetry: Telemetry
    state: DurableState
    _cond: threading.Condition
    _queue: list[Append]
    _queued_bytes: int
    _sealed: collections.deque[str]
    _disk_bytes: int
    _segments: SegmentAppender
    _stopping: bool

    def _run(self) -> None:
        segments = self._segments
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping and not self._seal_due() and not segments.repair_due():
                        self._cond.wait(self._wait())
                    batch, self._queue, self._queued_bytes = self._queue, [], 0
                    stopping = self._stopping
                if batch:
                    self._write(batch)
                sealing = self._seal_due() or (stopping and segments.active is not None)
                if sealing or segments.repair_due():
                    self._guarded(segments.seal_active if sealing else segments.repair)
                if stopping and not batch:
                    return
        except BaseException as exc:
            logger.exception("spool append thread failed")
            self._fail_queued(exc)
            raise

    def _wait(self) -> float | None:
        active = self._segments.active
        if self._segments.needs_repair:
            return self._segments.repair_wait()
        if active is None or self._sealed:
            return None  # woken by an append, or by release() once the writer caught up
        return max(0.0, active.opened + self._limits.seal_after_seconds - time.monotonic())

    def _seal_due(self) -> bool:
        active = self._segments.active
        if active is None or self._segments.needs_repair:
            return False
        if active.size >= self._limits.segment_bytes:
            return True
        # While the writer still has sealed segments to insert, sealing by age would only make its
        # batches smaller (and its inserts more numerous) without getting anything stored sooner.
        return not self._sealed and time.monotonic() - active.opened >= self._limits.seal_after_seconds

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except OSError as exc:
            self._segments.failed(exc)

    def _write(self, batch: list[Append]) -> None:
        """Append and fsync the batch's new records; resolve each request with its outcome."""
        durable: set[Append] = set()
        # A resend within the batch shares the outcome of its first copy (None: spooled earlier).
        firsts: dict[Append, Append | None] = {}
        failure: StorageUnavailable = SpoolWriteFailed("spool write failed")
        try:
            self._segments.repair()
            self._append(batch, durable, firsts)
        except OSError as exc:
            failure = self._segments.failed(exc)
        for item in batch:
            first = firsts.get(item, item)
            if first is None or (first is not item and first in durable):
                _resolve(item.future, False)
            else:
                _resolve(item.future, True if item in durable else failure)

    def _append(self, batch: list[Append], durable: set[Append], firsts: dict[Append, Append | None]) -> None:
        by_digest: dict[bytes, Append] = {}
        pending: list[Append] = []
        for item in batch:
            with self._cond:
                spooled = self.state.is_duplicate(item.digest)
            if spooled or item.digest in by_digest:
                firsts[item] = by_digest.get(item.digest)
                continue
            by_digest[item.digest] = item
            if self._segments.overfills(len(item.body)):
                self._commit(pending, durable)
                self._segments.seal_active()
            self._segments.write(item.body)
            pending.append(item)
        self._commit(pending, durable)

    def _commit(self, pending: list[Append], durable: set[Append]) -> None:
        """Fsync the active segment, then remember its new records as spooled (their hashes and series)."""
        active = self._segments.active
        if not pending or active is None:
            return
        active.sync()
        written = sum(len(item.body) for item in pending)
        with self._cond:
            for item in pending:
                self.state.add(item.digest, item.updates)
            self._disk_bytes += written
            self._telemetry.spool_bytes = self._disk_bytes
            self._note_oldest()
        self._telemetry.spooled_bytes += written
        durable.update(pending)
        pending.clear()
        self._segments.synced()

    def _sealed_segment(self, name: str) -> None:
        with self._cond:
            self.state.seal(name)
            self._sealed.append(name)
            self._note_oldest()
            self._cond.notify_all()

    def _note_oldest(self) -> None:
        # Segment names start with their creation time in ns and are sealed in that order, so the oldest sealed one
        # (or, while none is, the one still held by the appender) dates the oldest unsent data.
        oldest = self._sealed[0] if self._sealed else self._segments.oldest_held
        head = oldest.split("-", 1)[0] if oldest else ""
        self._telemetry.oldest_unsent_ns = int(head) if head.isdigit() else 0

    def _fail_queued(self, exc: BaseException) -> None:
        with self._cond:
            self._stopping = True
            batch, self._queue = self._queue, []
        for item in batch:
            _resolve(item.future, StorageUnavailable(f"spool stopped: {exc}"))


def _resolve(future: Future[bool], outcome: bool | Exception) -> None:
    # The awaiting request may be gone (its sender hung up); its record is durable all the same.
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
