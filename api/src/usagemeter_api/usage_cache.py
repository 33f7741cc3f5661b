"""A per-process cache of period usage totals read from ClickHouse: reused briefly, held through outages.

A total is reused by the quota check for at most ``ttl_seconds`` after it was read, so
``used`` is exact as of ClickHouse's data that long ago; ``ttl_seconds = 0`` reads every
time. Every total read is also held for ``hold_seconds``: while ClickHouse cannot be
read, quota answers come from it, marked as behind.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce

from usagemeter_api.periods import Window
from usagemeter_api.quota import Freshness
from usagemeter_api.usage import usage_totals
from usagemeter_clickhouse import Client

__all__ = ["Reading", "UsageCache"]

#: Totals per feature key and how fresh they are.
Reading = tuple[dict[str, float], Freshness]

#: Entries kept before old ones are swept, which bounds memory under many users.
_SWEEP_AT = 200_000

_Key = tuple[str, str, datetime, datetime]


@dataclass(frozen=True, slots=True)
class _Entry:
    total: float
    freshness: Freshness


class UsageCache:
    """Period usage totals keyed by (user, feature, period)."""

    def __init__(self, ttl_seconds: float, hold_seconds: float = 0.0) -> None:
        self._ttl = ttl_seconds
        self._hold = max(ttl_seconds, hold_seconds)
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def recent(self, user_id: str, feature_keys: Sequence[str], window: Window) -> Reading | None:
        """The totals of ``feature_keys`` when each was read within ``ttl_seconds``, else None."""
        return self._lookup(user_id, feature_keys, window, self._ttl)

    def held(self, user_id: str, feature_keys: Sequence[str], window: Window) -> Reading | None:
        """The totals last read of ``feature_keys`` (within ``hold_seconds``), marked behind; None if one is missing."""
        found = self._lookup(user_id, feature_keys, window, self._hold)
        return None if found is None else (found[0], found[1].falling_behind())

    def read(self, client: Client, user_id: str, feature_keys: Sequence[str], window: Window) -> Reading:
        """The totals of ``feature_keys`` read from ClickHouse now, and kept."""
        freshness = Freshness.now()
        found = usage_totals(client, user_id, feature_keys, window)
        totals = {key: found.get(key, 0.0) for key in feature_keys}
        if self._hold > 0:
            self._store(user_id, window, totals, freshness)
        return totals, freshness

    def _lookup(self, user_id: str, feature_keys: Sequence[str], window: Window, max_age: float) -> Reading | None:
        entries = [self._entries.get((user_id, key, window.start, window.end)) for key in feature_keys]
        present = [entry for entry in entries if entry is not None and entry.freshness.age() < max_age]
        if not present or len(present) < len(entries):
            return None
        totals = {key: entry.total for key, entry in zip(feature_keys, present, strict=True)}
        return totals, reduce(Freshness.oldest, (entry.freshness for entry in present))

    def _store(self, user_id: str, window: Window, totals: dict[str, float], freshness: Freshness) -> None:
        with self._lock:
            if len(self._entries) >= _SWEEP_AT:
                self._sweep()
            for key, total in totals.items():
                self._entries[(user_id, key, window.start, window.end)] = _Entry(total, freshness)

    def _sweep(self) -> None:
        kept = {key: entry for key, entry in self._entries.items() if entry.freshness.age() < self._hold}
        if len(kept) >= _SWEEP_AT // 2:
            # More users read within the hold than the bound allows: the oldest totals go first.
            by_age = sorted(kept.items(), key=lambda item: item[1].freshness.known_at)
            kept = dict(by_age[len(by_age) // 2 :])
        self._entries = kept
