"""The durable spool: requests are acknowledged once their record is fsync'd to a segment file.

One thread appends the queued records of all requests, fsyncs once for the
group and then resolves their futures; only then are the requests' hashes and
series updates folded into the durable state, so a refused request is never
taken for spooled. A failed write, fsync or segment creation (disk full, I/O
error) refuses the requests it touched as retryable and cuts the segment back
to its last durable end; the thread lives on, and the next write that succeeds
makes the spool writable again. Segments are sealed by size or age and handed
to the writer, which deletes each only after its insert committed.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path

from usagemeter_collector._errors import SpoolFull, SpoolWriteFailed, StorageUnavailable
from usagemeter_collector._spool.appending import SegmentAppender
from usagemeter_collector._spool.records import SeriesUpdate, decode_record
from usagemeter_collector._spool.resync import SegmentRecords
from usagemeter_collector._spool.segments import (
    HASHES_SUFFIX,
    SEGMENT_SUFFIX,
    create_private,
    frame,
    fsync_dir,
    make_private,
    private_dir,
    segment_names,
)
from usagemeter_collector._spool.state import DurableState, StateLimits
from usagemeter_collector._telemetry.counters import Telemetry

logger = logging.getLogger(__name__)

LOCK_FILE = "LOCK"


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
class _Append:
    body: bytes
    digest: bytes
    updates: list[SeriesUpdate]
    future: Future[bool]


class Spool:
    """Segment files in one directory, owned by one process at a time."""

    def __init__(self, directory: Path, limits: SpoolLimits, telemetry: Telemetry) -> None:
        self.directory = directory
        self._limits = limits
        self._telemetry = telemetry
        self.state = DurableState(directory, limits.dedup_window_seconds, limits.state, telemetry)
        self._records = SegmentRecords(directory, telemetry)
        self._cond = threading.Condition()
        self._queue: list[_Append] = []
        self._queued_bytes = 0
        self._sealed: collections.deque[str] = collections.deque()
        self._disk_bytes = 0
        self._segments = SegmentAppender(directory, limits.segment_bytes, telemetry, self._sealed_segment)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Lock the directory, recover the state from what earlier runs left, start the append thread."""
        private_dir(self.directory)
        self._lock_fd = create_private(self.directory / LOCK_FILE, 0)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StorageUnavailable(f"spool {self.directory} is in use by another process") from exc
        make_private(self.directory)
        names = segment_names(self.directory)
        self._records.left_by_earlier_run(names)
        self.state.load((name, [decode_record(body) for body in self.records(name)]) for name in names)
        self._sealed.extend(names)
        self._note_oldest()
        self._disk_bytes = sum(self._path(name).stat().st_size for name in names)
        self._telemetry.spool_bytes = self._disk_bytes
        if names:
            logger.info(
                "spool %s holds %d segments (%d bytes) from an earlier run",
                self.directory,
                len(names),
                self._disk_bytes,
            )
        self._thread = threading.Thread(target=self._run, name="usagemeter-collector-spool", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, seal the active segment, stop the append thread and release the directory."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def records(self, name: str) -> Iterator[bytes]:
        """The intact record bodies of segment ``name``; damaged bytes are reported once and kept aside."""
        return self._records.read(name)

    def append(self, body: bytes, digest: bytes, updates: list[SeriesUpdate]) -> Future[bool]:
        """Queue a record; the future is True once it is durable, False if ``digest`` was already spooled."""
        future: Future[bool] = Future()
        framed = frame(body)
        with self._cond:
            if self._stopping:
                raise StorageUnavailable("collector is shutting down")
            if self._disk_bytes + self._queued_bytes + len(framed) > self._limits.max_bytes:
                raise SpoolFull(f"spool is full ({self._disk_bytes} of {self._limits.max_bytes} bytes)")
            self._queue.append(_Append(framed, digest, updates, future))
            self._queued_bytes += len(framed)
            self._cond.notify_all()
        return future

    def is_duplicate(self, digest: bytes) -> bool:
        """Whether a request with this content hash was spooled within the dedup window."""
        with self._cond:
            return self.state.is_duplicate(digest)

    def sealed_after(self, name: str | None, timeout: float) -> str | None:
        """The oldest sealed segment not yet released that is newer than ``name`` (any, for None),
        waiting up to ``timeout`` seconds for one."""
        with self._cond:
            found = self._first_sealed_after(name)
            if found is None:
                self._cond.wait(timeout)
                found = self._first_sealed_after(name)
            return found

    def _first_sealed_after(self, name: str | None) -> str | None:
        # Names sort by creation time, and segments are sealed in that order.
        return next((sealed for sealed in self._sealed if name is None or sealed > name), None)

    def segment_path(self, name: str) -> Path:
        return self._path(name)

    def release(self, name: str) -> None:
        """Delete a segment whose rows are committed."""
        path = self._path(name)
        size = path.stat().st_size
        path.unlink()
        fsync_dir(self.directory)
        self._records.forget(name)
        with self._cond:
            self._sealed.popleft()
            self._note_oldest()
            self._disk_bytes -= size
            self._telemetry.spool_bytes = self._disk_bytes
            self._cond.notify_all()

    @property
    def empty(self) -> bool:
        """Nothing queued, active or sealed: everything acknowledged is in ClickHouse."""
        with self._cond:
            return not self._queue and not self._sealed and not self._segments.held

    @property
    def segments(self) -> int:
        """Segments on disk not yet inserted: the sealed ones and the one being filled."""
        with self._cond:
            return len(self._sealed) + self._segments.held

    @property
    def appending(self) -> bool:
        """Whether the append thread still runs (False once closed)."""
        return self._thread is not None and self._thread.is_alive()

    def _path(self, name: str) -> Path:
        return self.directory / (name + SEGMENT_SUFFIX)

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

    def _write(self, batch: list[_Append]) -> None:
        """Append and fsync the batch's new records; resolve each request with its outcome."""
        durable: set[_Append] = set()
        # A resend within the batch shares the outcome of its first copy (None: spooled earlier).
        firsts: dict[_Append, _Append | None] = {}
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

    def _append(self, batch: list[_Append], durable: set[_Append], firsts: dict[_Append, _Append | None]) -> None:
        by_digest: dict[bytes, _Append] = {}
        pending: list[_Append] = []
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

    def _commit(self, pending: list[_Append], durable: set[_Append]) -> None:
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


__all__ = ["HASHES_SUFFIX", "Spool", "SpoolLimits"]
