"""Sealed spool segments read ahead of the writer, so each insert starts as soon as the previous one ends.

Reading a segment (checksums, decoding its records) takes tens of milliseconds
per 16 MiB, more while the receivers are busy. Done by the writer between two
inserts, it would leave ClickHouse idle for that long each time; a reader thread
does it while the previous segment is being inserted. At most one segment is
read ahead, so memory stays bounded by two segments.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, NamedTuple

from usagemeter_collector._spool.records import MetricsRequest, decode_record
from usagemeter_collector._spool.spool import Spool

logger = logging.getLogger(__name__)

#: How often the reader looks at its stop flag while it waits.
_POLL_SECONDS = 0.1
#: How long the reader waits before reading a segment again after it failed to.
_REREAD_SECONDS = 1.0


class SegmentContents(NamedTuple):
    """A sealed segment's rows, column by column per table, and its metrics requests, in record order."""

    name: str
    columns: dict[str, list[list[Any]]]
    requests: list[MetricsRequest]
    #: The bytes of its records.
    size: int


def read_segment(spool: Spool, name: str) -> SegmentContents:
    """The contents of one sealed segment."""
    merged: dict[str, list[list[Any]]] = {}
    requests: list[MetricsRequest] = []
    size = 0
    for body in spool.records(name):
        size += len(body)
        record = decode_record(body)
        if record.request is not None:
            requests.append(record.request)
        for table, columns in record.columns.items():
            if table not in merged:
                merged[table] = [list(column) for column in columns]
            else:
                for into, column in zip(merged[table], columns, strict=True):
                    into.extend(column)
    return SegmentContents(name, merged, requests, size)


class SegmentReader:
    """A thread that reads the spool's sealed segments, oldest first, one ahead of the writer."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._ready: queue.SimpleQueue[SegmentContents] = queue.SimpleQueue()
        # One slot: the reader reads the next segment only once the writer took the last one.
        self._slot = threading.Semaphore(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading."""
        self._thread = threading.Thread(target=self._run, name="usagemeter-collector-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (what it read ahead is dropped; the segment stays spooled)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def next(self, timeout: float) -> SegmentContents | None:
        """The next segment to insert, waiting up to ``timeout`` seconds for one."""
        try:
            contents = self._ready.get(timeout=timeout)
        except queue.Empty:
            return None
        self._slot.release()
        return contents

    def _run(self) -> None:
        last: str | None = None
        while not self._stop.is_set():
            if not self._slot.acquire(timeout=_POLL_SECONDS):
                continue
            name = None
            while name is None and not self._stop.is_set():
                name = self._spool.sealed_after(last, timeout=_POLL_SECONDS)
            if name is None:
                return
            try:
                self._ready.put(read_segment(self._spool, name))
            except Exception:
                logger.exception("cannot read spool segment %s, will try again", name)
                self._slot.release()
                self._stop.wait(_REREAD_SECONDS)
                continue
            last = name
