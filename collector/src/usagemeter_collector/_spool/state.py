"""What must survive a restart besides the spooled rows: cumulative series states and recent request hashes.

When a segment is sealed, the series states its records moved to go to a
``<segment>.series`` sidecar and their request hashes to a ``<segment>.hashes``
sidecar; once the series sidecars add up to more than the snapshot (or are
many), one ``series.snapshot`` of every tracked series replaces them, so
writing state stays proportional to what changed. On start the snapshot,
the newer series sidecars and the records of segments newer than the
snapshot are folded in. Only records that reached the spool are folded in,
so the state never runs ahead of what was acknowledged.

Both are bounded: series not updated for ``series_ttl_seconds`` of collector
running time are forgotten (a sender that comes back after that starts a new
run), and at most ``max_hashes`` request hashes are kept, the oldest dropped
first. A damaged state file is moved to the quarantine folder and start goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from usagemeter_collector._spool.records import Record, SeriesUpdate
from usagemeter_collector._spool.segments import HASHES_SUFFIX, write_durably
from usagemeter_collector._spool.series import SeriesState, SeriesTable, pack_entry, series_digest
from usagemeter_collector._spool.state_files import (
    DamagedStateFile,
    decode_hashes_file,
    decode_series_file,
    encode_series_file,
    quarantine,
)
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "series.snapshot"
SERIES_SUFFIX = ".series"
#: Series sidecars are folded into a new snapshot once they are this many, or larger than the snapshot.
MAX_SERIES_SIDECARS = 64
_MIN_COMPACTION_BYTES = 1024 * 1024

_SNAPSHOT_LOST = "cumulative series it held restart as new runs (the next point of each counts its whole value)"
_SIDECAR_LOST = (
    "the cumulative series states of that segment are lost; their next points are differenced against older "
    "states (that segment's increments may be counted again)"
)
_HASHES_LOST = "resend detection for that segment's requests is lost (an identical resend is stored again)"


@dataclass(frozen=True)
class StateLimits:
    """How long an idle cumulative series is remembered and how many request hashes are kept."""

    series_ttl_seconds: float = 6 * 3600.0
    max_hashes: int = 500_000


def segment_seconds(name: str) -> float | None:
    """The creation time of a segment (Unix seconds) from its name, None when the name does not tell."""
    head = name.split("-", 1)[0]
    return int(head) / 1e9 if head.isdigit() else None


class DurableState:
    """Series states and request hashes as of the records written to the spool."""

    def __init__(
        self,
        directory: Path,
        dedup_window_seconds: float,
        limits: StateLimits | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._directory = directory
        self._window = dedup_window_seconds
        self._limits = limits if limits is not None else StateLimits()
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self.series = SeriesTable(self._limits.series_ttl_seconds)
        self.hashes: dict[bytes, float] = {}
        self._segment_hashes: list[tuple[bytes, float]] = []
        self._segment_series = bytearray()
        self._sidecars: list[Path] = []
        self._sidecar_bytes = 0
        self._snapshot_bytes = 0
        self.covered = ""

    def load(self, segments: Iterable[tuple[str, list[Record]]]) -> None:
        """Read the snapshot and sidecars, then replay ``segments`` (name, records) still in the spool."""
        now = time.time()
        snapshot_covered = self._load_snapshot(now)
        self._load_series_sidecars(snapshot_covered)
        self._load_hashes(now)
        for name, records in segments:
            seen = segment_seconds(name) or now
            for record in records:
                if record.digest not in self.hashes:
                    self._remember(record.digest, now)
                # Replaying what a sidecar already holds changes nothing: a state only moves forward.
                if name > snapshot_covered:
                    self._apply(record.updates, seen)
        newest = self.series.newest_update()
        if newest is not None and now - newest > 1:
            self.series.shift(now - newest)
        self._expire()

    def is_duplicate(self, digest: bytes) -> bool:
        """Whether a request with this content hash was spooled within the dedup window."""
        seen = self.hashes.get(digest)
        return seen is not None and time.time() - seen <= self._window

    def add(self, digest: bytes, updates: list[SeriesUpdate]) -> None:
        """Fold in a record that was just written to the active segment."""
        now = time.time()
        self._remember(digest, now)
        self._segment_hashes.append((digest, now))
        for key, state in self._apply(updates, now):
            self._segment_series += pack_entry(key, state, now)

    def seal(self, segment: str) -> None:
        """Persist what the records of ``segment`` added, before the segment may be inserted and deleted."""
        if self._segment_hashes:
            write_durably(self._directory / (segment + HASHES_SUFFIX), msgpack.packb(self._segment_hashes))
            self._segment_hashes = []
        if self._segment_series:
            self._write_sidecar(segment)
        self.covered = segment
        self._expire()

    def _write_sidecar(self, segment: str) -> None:
        path = self._directory / (segment + SERIES_SUFFIX)
        data = encode_series_file(segment, bytes(self._segment_series))
        write_durably(path, data)
        self._segment_series = bytearray()
        self._sidecars.append(path)
        self._sidecar_bytes += len(data)
        if len(self._sidecars) >= MAX_SERIES_SIDECARS or self._sidecar_bytes > max(
            self._snapshot_bytes, _MIN_COMPACTION_BYTES
        ):
            self._write_snapshot(segment)

    def _write_snapshot(self, segment: str) -> None:
        self._expire_series()
        data = encode_series_file(segment, self.series.dump())
        write_durably(self._directory / SNAPSHOT_FILE, data)
        self._snapshot_bytes = len(data)
        for sidecar in self._sidecars:
            sidecar.unlink(missing_ok=True)
        self._sidecars, self._sidecar_bytes = [], 0

    def _apply(self, updates: Iterable[SeriesUpdate], seen: float) -> list[tuple[bytes, SeriesState]]:
        """Fold in series updates; those that moved a series forward (requests may reach the spool out of order)."""
        applied = []
        for key, state in updates:
            digest = series_digest(key)
            if self.series.put(digest, state, seen):
                applied.append((digest, state))
        self._telemetry.cumulative_series = len(self.series)
        return applied

    def _remember(self, digest: bytes, seen: float) -> None:
        self.hashes[digest] = seen
        while len(self.hashes) > self._limits.max_hashes:
            del self.hashes[next(iter(self.hashes))]  # insertion order is time order

    def _load_snapshot(self, now: float) -> str:
        """Fold in the snapshot; the name of the last segment it covers ("" without one)."""
        path = self._directory / SNAPSHOT_FILE
        if not path.exists():
            return ""
        folded = self._fold_series_file(path, now, _SNAPSHOT_LOST)
        if folded is None:
            self.series = SeriesTable(self._limits.series_ttl_seconds)
            return ""
        self.covered, self._snapshot_bytes = folded
        return self.covered

    def _load_series_sidecars(self, snapshot_covered: str) -> None:
        for path in sorted(self._directory.glob("*" + SERIES_SUFFIX)):
            if path.name.removesuffix(SERIES_SUFFIX) <= snapshot_covered:
                path.unlink()  # already folded into the snapshot
                continue
            folded = self._fold_series_file(path, 0.0, _SIDECAR_LOST)
            if folded is None:
                continue
            covered, size = folded
            self._sidecars.append(path)
            self._sidecar_bytes += size
            self.covered = max(self.covered, covered)

    def _fold_series_file(self, path: Path, seen_fallback: float, consequence: str) -> tuple[str, int] | None:
        """Fold in a series state file; the last segment it covers and its size, None if damaged (moved aside)."""
        try:
            data = path.read_bytes()
            covered, entries = decode_series_file(data, seen_fallback)
            self.series.load(entries)
        except DamagedStateFile as exc:
            self._quarantine(path, str(exc), consequence)
            return None
        return covered, len(data)

    def _load_hashes(self, now: float) -> None:
        for sidecar in sorted(self._directory.glob("*" + HASHES_SUFFIX)):
            try:
                entries = decode_hashes_file(sidecar.read_bytes())
            except DamagedStateFile as exc:
                self._quarantine(sidecar, str(exc), _HASHES_LOST)
                continue
            if entries and now - max(seen for _, seen in entries) > self._window:
                sidecar.unlink()
                continue
            for digest, seen in entries:
                self._remember(digest, seen)

    def _quarantine(self, path: Path, reason: str, consequence: str) -> None:
        quarantine(path, reason, consequence)
        self._telemetry.state_files_quarantined += 1

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
            created = segment_seconds(sidecar.name)
            if created is not None and created < horizon - 3600:
                sidecar.unlink(missing_ok=True)
        self._expire_series()

    def _expire_series(self) -> None:
        expired = self.series.expire_idle()
        if expired:
            logger.info("forgot %d cumulative series not updated for %.0f s", expired, self._limits.series_ttl_seconds)
        self._telemetry.cumulative_series = len(self.series)
