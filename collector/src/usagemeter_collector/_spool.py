"""The durable spool: requests are acknowledged once their record is fsync'd to a segment file.

One thread appends the queued records of all requests, fsyncs once for the
group and then resolves their futures. Segments are sealed by size or age and
handed to the writer, which deletes each only after its insert committed.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from usagemeter_collector._errors import SpoolFull, StorageUnavailable
from usagemeter_collector._records import SeriesUpdate, decode_record
from usagemeter_collector._segments import (
    HASHES_SUFFIX,
    SEGMENT_SUFFIX,
    frame,
    fsync_dir,
    new_segment_name,
    open_segment,
    read_records,
    segment_names,
)
from usagemeter_collector._state import DurableState
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

LOCK_FILE = "LOCK"


@dataclass(frozen=True)
class SpoolLimits:
    """How large the spool and its segments may grow and how long a record waits for its segment to seal."""

    max_bytes: int
    segment_bytes: int
    seal_after_seconds: float
    dedup_window_seconds: float


@dataclass
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
        self.state = DurableState(directory, limits.dedup_window_seconds)
        self._cond = threading.Condition()
        self._queue: list[_Append] = []
        self._queued_bytes = 0
        self._sealed: collections.deque[str] = collections.deque()
        self._disk_bytes = 0
        self._active: BinaryIO | None = None
        self._active_name = ""
        self._active_since = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Lock the directory, recover the state from what earlier runs left, start the append thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StorageUnavailable(f"spool {self.directory} is in use by another process") from exc
        names = segment_names(self.directory)
        self.state.load((name, [decode_record(body) for body in read_records(self._path(name))]) for name in names)
        self._sealed.extend(names)
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
        with self._cond:
            self._sealed.popleft()
            self._disk_bytes -= size
            self._telemetry.spool_bytes = self._disk_bytes
            self._cond.notify_all()

    @property
    def empty(self) -> bool:
        """Nothing queued, active or sealed: everything acknowledged is in ClickHouse."""
        with self._cond:
            return not self._queue and not self._sealed and self._active is None

    @property
    def segments(self) -> int:
        """Segments on disk not yet inserted: the sealed ones and the one being filled."""
        with self._cond:
            return len(self._sealed) + (self._active is not None)

    @property
    def appending(self) -> bool:
        """Whether the append thread still runs (False once closed)."""
        return self._thread is not None and self._thread.is_alive()

    def _path(self, name: str) -> Path:
        return self.directory / (name + SEGMENT_SUFFIX)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping and not self._seal_due():
                        self._cond.wait(self._seal_wait())
                    batch, self._queue, self._queued_bytes = self._queue, [], 0
                    stopping = self._stopping
                if batch:
                    self._write(batch)
                if self._seal_due() or (stopping and self._active is not None):
                    self._seal()
                if stopping and not batch:
                    return
        except BaseException as exc:
            logger.exception("spool append thread failed")
            self._fail_queued(exc)
            raise

    def _seal_wait(self) -> float | None:
        if self._active is None or self._sealed:
            return None  # woken by an append, or by release() once the writer caught up
        return max(0.0, self._active_since + self._limits.seal_after_seconds - time.monotonic())

    def _seal_due(self) -> bool:
        if self._active is None:
            return False
        if self._active.tell() >= self._limits.segment_bytes:
            return True
        # While the writer still has sealed segments to insert, sealing by age would only make its
        # batches smaller (and its inserts more numerous) without getting anything stored sooner.
        age = time.monotonic() - self._active_since
        return not self._sealed and age >= self._limits.seal_after_seconds

    def _write(self, batch: list[_Append]) -> None:
        outcomes: list[tuple[_Append, bool]] = []
        try:
            written = 0
            for item in batch:
                with self._cond:
                    fresh = not self.state.is_duplicate(item.digest)
                if fresh:
                    self._segment_for(len(item.body)).write(item.body)
                    written += len(item.body)
                    with self._cond:
                        self.state.add(item.digest, item.updates)
                outcomes.append((item, fresh))
            if self._active is not None:
                _sync(self._active)
        except OSError as exc:
            logger.exception("spool write failed")
            for item in batch:
                _resolve(item.future, StorageUnavailable(f"spool write failed: {exc}"))
            raise
        with self._cond:
            self._disk_bytes += written
            self._telemetry.spool_bytes = self._disk_bytes
        self._telemetry.spooled_bytes += written
        for item, fresh in outcomes:
            _resolve(item.future, fresh)

    def _segment_for(self, size: int) -> BinaryIO:
        """The segment a record of ``size`` bytes goes to: a new one when it would overfill the active one.

        A segment is inserted as one batch, so one that ran over its size would end in a small extra insert.
        """
        active = self._active
        if active is not None and active.tell() and active.tell() + size > self._limits.segment_bytes:
            _sync(active)
            self._seal()
        return self._active_segment()

    def _active_segment(self) -> BinaryIO:
        if self._active is None:
            self._active_name = new_segment_name()
            self._active = open_segment(self.directory, self._active_name)
            self._active_since = time.monotonic()
        return self._active

    def _seal(self) -> None:
        assert self._active is not None
        self._active.close()
        with self._cond:
            self.state.seal(self._active_name)
            self._sealed.append(self._active_name)
            self._active = None
            self._cond.notify_all()

    def _fail_queued(self, exc: BaseException) -> None:
        with self._cond:
            self._stopping = True
            batch, self._queue = self._queue, []
        for item in batch:
            _resolve(item.future, StorageUnavailable(f"spool stopped: {exc}"))


def _sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _resolve(future: Future[bool], outcome: bool | Exception) -> None:
    # The awaiting request may be gone (its sender hung up); its record is durable all the same.
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


__all__ = ["HASHES_SUFFIX", "Spool", "SpoolLimits"]
