"""What must survive a restart besides the spooled rows: cumulative series states and recent request hashes.

The series states are snapshotted when a segment is sealed (only if they
changed) and the hashes of each sealed segment go to a sidecar file; records
of segments newer than the snapshot are replayed on start. Only records that
reached the spool are folded in, so the state never runs ahead of what was
acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable
from pathlib import Path

import msgpack

from usagemeter_collector._cumulative import SeriesState
from usagemeter_collector._records import Record, SeriesUpdate, freeze
from usagemeter_collector._segments import HASHES_SUFFIX, write_durably

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "series.snapshot"


class DurableState:
    """Series states and request hashes as of the records written to the spool."""

    def __init__(self, directory: Path, dedup_window_seconds: float) -> None:
        self._directory = directory
        self._window = dedup_window_seconds
        self.series: dict[Hashable, SeriesState] = {}
        self.hashes: dict[bytes, float] = {}
        self._segment_hashes: list[tuple[bytes, float]] = []
        self._dirty = False
        self.covered = ""

    def load(self, segments: Iterable[tuple[str, list[Record]]]) -> None:
        """Read the snapshot and sidecars, then replay ``segments`` (name, records) still in the spool."""
        snapshot = self._directory / SNAPSHOT_FILE
        if snapshot.exists():
            self.covered, entries = msgpack.unpackb(snapshot.read_bytes(), raw=False, strict_map_key=False)
            self.series = {freeze(key): SeriesState(*state) for key, state in entries}
        now = time.time()
        for sidecar in sorted(self._directory.glob("*" + HASHES_SUFFIX)):
            entries = msgpack.unpackb(sidecar.read_bytes(), raw=False)
            if entries and now - max(seen for _, seen in entries) > self._window:
                sidecar.unlink()
                continue
            self.hashes.update((digest, seen) for digest, seen in entries)
        for name, records in segments:
            for record in records:
                self.hashes.setdefault(record.digest, now)
                if name > self.covered:
                    self._apply(record.updates)

    def is_duplicate(self, digest: bytes) -> bool:
        seen = self.hashes.get(digest)
        return seen is not None and time.time() - seen <= self._window

    def add(self, digest: bytes, updates: list[SeriesUpdate]) -> None:
        """Fold in a record that was just written to the active segment."""
        now = time.time()
        self.hashes[digest] = now
        self._segment_hashes.append((digest, now))
        self._apply(updates)

    def seal(self, segment: str) -> None:
        """Persist what the records of ``segment`` added, before the segment may be inserted and deleted."""
        if self._segment_hashes:
            write_durably(self._directory / (segment + HASHES_SUFFIX), msgpack.packb(self._segment_hashes))
            self._segment_hashes = []
        if self._dirty:
            entries = [(key, tuple(state)) for key, state in self.series.items()]
            write_durably(self._directory / SNAPSHOT_FILE, msgpack.packb((segment, entries), use_bin_type=True))
            self._dirty = False
        self.covered = segment
        self._expire()

    def _apply(self, updates: list[SeriesUpdate]) -> None:
        for key, state in updates:
            last = self.series.get(key)
            # Concurrent requests may reach the spool out of order; a series only moves forward in time.
            if last is None or state.time > last.time:
                self.series[key] = state
                self._dirty = True

    def _expire(self) -> None:
        horizon = time.time() - self._window
        stale = []
        for digest, seen in self.hashes.items():  # insertion order is time order
            if seen >= horizon:
                break
            stale.append(digest)
        for digest in stale:
            del self.hashes[digest]
        for sidecar in self._directory.glob("*" + HASHES_SUFFIX):
            # A sidecar is named after its segment, whose name starts with its creation time in ns.
            if int(sidecar.name.split("-", 1)[0]) / 1e9 < horizon - 3600:
                sidecar.unlink(missing_ok=True)
