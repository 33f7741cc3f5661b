"""Cumulative series states in a compact table: a 16-byte digest of each series' identity → its last point, packed.

A series is named by a digest of its identity (resource, scope, metric and point attributes) instead of
the nested tuples themselves, and its state is one fixed-size ``bytes`` value, so a tracked series costs
the same small amount of memory whatever its attributes (about 200 bytes, docs/collector.md "Memory
bounds"). The table keeps its series in the order they were last updated, so expiring the idle ones
looks only at the oldest.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
import time
from collections.abc import Hashable, Iterable, Iterator
from typing import NamedTuple

import msgpack

DIGEST_BYTES = 16
#: start time (ns), time (ns), value, last update (Unix seconds, collector clock).
_STATE = struct.Struct("<qqdd")
#: One series as stored in state files: its digest, then its packed state.
ENTRY_BYTES = DIGEST_BYTES + _STATE.size


class SeriesState(NamedTuple):
    """The last point seen of one cumulative series."""

    start_time: int
    time: int
    value: float


def series_digest(key: Hashable) -> bytes:
    """The fixed-size identity of a series key (nested tuples or lists of strings and numbers).

    A key that already is a digest is returned as it is; lists and tuples hash alike, so a key read
    back from MessagePack names the same series as the tuple it was written from.
    """
    if isinstance(key, bytes) and len(key) == DIGEST_BYTES:
        return key
    return hashlib.blake2b(msgpack.packb(key, use_bin_type=True), digest_size=DIGEST_BYTES).digest()


def pack_entry(digest: bytes, state: SeriesState, seen: float) -> bytes:
    """One series as its state-file entry."""
    return digest + _STATE.pack(state.start_time, state.time, state.value, seen)


def unpack_entries(data: bytes | memoryview) -> Iterator[tuple[bytes, SeriesState, float]]:
    """The (digest, state, last update) of each entry in ``data`` (a whole number of entries)."""
    view = memoryview(data)
    for offset in range(0, len(view), ENTRY_BYTES):
        start_time, last_time, value, seen = _STATE.unpack_from(view, offset + DIGEST_BYTES)
        yield bytes(view[offset : offset + DIGEST_BYTES]), SeriesState(start_time, last_time, value), seen


class SeriesTable:
    """Series digest → last state and last update time, oldest update first; safe to share between threads."""

    def __init__(self, ttl_seconds: float = math.inf) -> None:
        self._entries: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        #: Series not updated for this long are forgotten by :meth:`expire_idle`.
        self.ttl_seconds = ttl_seconds

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def get(self, digest: bytes) -> SeriesState | None:
        """The last state of a series, or None when it is not tracked."""
        packed = self._entries.get(digest)
        if packed is None:
            return None
        start_time, last_time, value, _ = _STATE.unpack(packed)
        return SeriesState(start_time, last_time, value)

    def put(self, digest: bytes, state: SeriesState, seen: float) -> bool:
        """Record ``state`` if it is newer than the one tracked (points may arrive out of order); True if it was."""
        with self._lock:
            packed = self._entries.get(digest)
            if packed is not None:
                if _STATE.unpack(packed)[1] >= state.time:
                    return False
                del self._entries[digest]  # re-inserted at the end: the table stays in update order
            self._entries[digest] = _STATE.pack(state.start_time, state.time, state.value, seen)
            return True

    def expire_idle(self) -> int:
        """Forget the series not updated for ``ttl_seconds``; the number forgotten."""
        horizon = time.time() - self.ttl_seconds
        with self._lock:
            stale = []
            for digest, packed in self._entries.items():
                if _STATE.unpack(packed)[3] >= horizon:
                    break
                stale.append(digest)
            for digest in stale:
                del self._entries[digest]
        return len(stale)

    def newest_update(self) -> float | None:
        """When the most recently updated series was updated (None when empty)."""
        with self._lock:
            if not self._entries:
                return None
            return float(_STATE.unpack(self._entries[next(reversed(self._entries))])[3])

    def shift(self, seconds: float) -> None:
        """Move every series' last update ``seconds`` later: time the collector was not running is not idle time."""
        with self._lock:
            for digest, packed in self._entries.items():
                start_time, last_time, value, seen = _STATE.unpack(packed)
                self._entries[digest] = _STATE.pack(start_time, last_time, value, seen + seconds)

    def load(self, entries: Iterable[tuple[bytes, SeriesState, float]]) -> None:
        """Fold in entries read back from state files (each kept only if newer than what is tracked)."""
        for digest, state, seen in entries:
            self.put(digest, state, seen)

    def dump(self) -> bytes:
        """Every series as state-file entries, oldest update first."""
        with self._lock:
            return b"".join(digest + packed for digest, packed in self._entries.items())
