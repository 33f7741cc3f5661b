"""The durable spool: requests are acknowledged once their record is fsync'd to a segment file.

One thread appends the queued records of all requests, fsyncs once for the
group and then resolves their futures (:mod:`usagemeter_collector._spool.group_commit`).
A failed write, fsync or segment creation (disk full, I/O error) refuses the
requests it touched as retryable and cuts the segment back to its last durable
end; the next write that succeeds makes the spool writable again. Segments are
sealed by size or age and handed to the writer, which deletes each only after its
insert committed.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from usagemeter_collector._errors import SpoolFull, StorageUnavailable
from usagemeter_collector._spool.appending import SegmentAppender
from usagemeter_collector._spool.group_commit import Append, GroupCommit, SpoolLimits
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
from usagemeter_collector._spool.state import DurableState
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

LOCK_FILE = "LOCK"


class Spool(GroupCommit):
    """Segment files in one directory, owned by one process at a time."""

    def __init__(self, directory: Path, limits: SpoolLimits, telemetry: Telemetry) -> None:
        self.directory = directory
        self._limits = limits
        self._telemetry = telemetry
        self.state = DurableState(directory, limits.dedup_window_seconds, limits.state, telemetry)
        self._records = SegmentRecords(directory, telemetry)
        self._cond = threading.Condition()
        self._queue = []
        self._queued_bytes = 0
        self._sealed = collections.deque()
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
            self._queue.append(Append(framed, digest, updates, future))
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


__all__ = ["HASHES_SUFFIX", "Spool", "SpoolLimits"]
