"""A per-process, short-lived cache of period usage totals for the quota check.

A total is reused for at most ``ttl_seconds`` after it was read, so ``used`` is
exact as of ClickHouse's data that long ago; ``ttl_seconds = 0`` reads every time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from usagemeter_api.periods import Window
from usagemeter_api.usage import usage_totals
from usagemeter_clickhouse import Client

__all__ = ["UsageCache"]

#: Entries kept before expired ones are swept, which bounds memory under many users.
_SWEEP_AT = 200_000


class UsageCache:
    """Period usage totals keyed by (user, feature, period start)."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[tuple[str, str, datetime], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def used(self, client: Client, user_id: str, feature_key: str, window: Window) -> float:
        """Uses of ``feature_key`` by ``user_id`` in ``window``, from the cache when fresh."""
        key = (user_id, feature_key, window.start)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        total = usage_totals(client, user_id, [feature_key], window).get(feature_key, 0.0)
        if self._ttl > 0:
            self._store(key, total, now + self._ttl)
        return total

    def _store(self, key: tuple[str, str, datetime], total: float, expires: float) -> None:
        with self._lock:
            if len(self._entries) >= _SWEEP_AT:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            self._entries[key] = (total, expires)
