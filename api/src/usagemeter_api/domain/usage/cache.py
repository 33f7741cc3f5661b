"""A per-process cache of window usage totals read from ClickHouse: reused briefly, held through outages.

A total is reused by the quota check for at most ``ttl_seconds`` after it was read, so
``used`` is exact as of ClickHouse's data that long ago; ``ttl_seconds = 0`` reads every
time. Every total read is also held: while ClickHouse cannot be read, quota answers
come from it, marked as behind, until it is older than ``hold_seconds`` allows.

:class:`ReadCircuit` keeps an outage from costing ClickHouse one failed read per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import TypeVar

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.httpclient import HttpClient
from urllib3 import Timeout

from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.usage.queries import minute_usage, usage_totals
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import Client

__all__ = ["ReadCircuit", "Reading", "UsageCache"]

#: Micro-units per slice asked for (in the order asked), and how fresh they are.
Reading = tuple[list[int], Freshness]
#: A rolling window's usage per minute, oldest first, per slice.
Minutes = dict[Slice, list[tuple[datetime, int]]]

#: Entries kept before old ones are swept, which bounds memory under many users.
_SWEEP_AT = 200_000

_Key = tuple[str, Slice, datetime, datetime]
#: Minute distributions kept at once, each at most a rolling window's minutes (31 days) per slice: at worst
#: some 5 MB apiece, for a user with usage in every minute of a 31-day window.
_MINUTES_MAX = 64

T = TypeVar("T")

#: Users skipped after a failed read, kept at most this many: past it, every read is skipped instead.
_SKIPPED_USERS_MAX = 100_000
#: Reads under way at once: threads left waiting on a hung server stop at this many.
_RUNNING_MAX = 4


@dataclass(frozen=True, slots=True)
class _Entry:
    total: int
    freshness: Freshness


class UsageCache:
    """Window usage totals keyed by (user, slice, window); and briefly, the minute distributions of rolling ones."""

    def __init__(self, ttl_seconds: float, hold_seconds: float = 0.0) -> None:
        self._ttl = ttl_seconds
        self._hold = max(ttl_seconds, hold_seconds)
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()
        self._minutes: dict[tuple[str, tuple[Slice, ...], Window], tuple[float, Minutes]] = {}
        #: Which reads standing in for stale figures to skip for now.
        self.circuit = ReadCircuit()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def minutes_held(self) -> int:
        """How many reads of rolling windows' usage per minute are kept."""
        return len(self._minutes)

    def recent(self, user_id: str, slices: Sequence[Slice], window: Window) -> Reading | None:
        """The totals of ``slices`` when each was read within ``ttl_seconds``, else None."""
        return self._lookup(user_id, slices, window, self._ttl)

    def held(self, user_id: str, slices: Sequence[Slice], window: Window) -> Reading | None:
        """The totals last read of ``slices``, marked behind; None if one is missing.

        Totals older than ``hold_seconds`` are kept until swept, so a caller can tell a user
        whose figures expired from one never read.
        """
        found = self._lookup(user_id, slices, window, float("inf"))
        return None if found is None else (found[0], found[1].falling_behind())

    def read(
        self,
        client: Client,
        user_id: str,
        slices: Sequence[Slice],
        window: Window,
        *,
        timeout_seconds: float | None = None,
    ) -> Reading:
        """The totals of ``slices`` read from ClickHouse now, and kept.

        ``timeout_seconds`` bounds the wait for a server to connect and answer (the
        client's own timeouts are minutes long).
        """
        freshness = Freshness.now()
        with _socket_timeout(client, timeout_seconds):
            found = usage_totals(client, user_id, slices, window)
        totals = [found.get(part, 0) for part in slices]
        if self._hold > 0:
            self._store(user_id, slices, window, totals, freshness)
        return totals, freshness

    def minutes(self, client: Client, user_id: str, slices: Sequence[Slice], window: Window) -> Minutes:
        """The usage per minute of ``slices`` in ``window``: read from ClickHouse, or as read within ``ttl_seconds``.

        Only asked for when a rolling limit refuses or for the listings, so it is kept briefly and
        bounded in number rather than held through outages.
        """
        key = (user_id, tuple(slices), window)
        found = self._minutes.get(key)
        if found is not None and time.monotonic() - found[0] < max(self._ttl, 1.0):
            return found[1]
        minutes = minute_usage(client, user_id, slices, window)
        now = time.monotonic()
        with self._lock:
            if len(self._minutes) >= _MINUTES_MAX:
                kept = max(self._ttl, 1.0)
                self._minutes = {key: entry for key, entry in self._minutes.items() if now - entry[0] < kept}
            if len(self._minutes) >= _MINUTES_MAX:
                self._minutes.clear()
            self._minutes[key] = (now, minutes)
        return minutes

    def _lookup(self, user_id: str, slices: Sequence[Slice], window: Window, max_age: float) -> Reading | None:
        entries = [self._entries.get((user_id, part, window.start, window.end)) for part in slices]
        present = [entry for entry in entries if entry is not None and entry.freshness.age() < max_age]
        if not present or len(present) < len(entries):
            return None
        return [entry.total for entry in present], reduce(Freshness.oldest, (entry.freshness for entry in present))

    def _store(
        self, user_id: str, slices: Sequence[Slice], window: Window, totals: list[int], freshness: Freshness
    ) -> None:
        with self._lock:
            if len(self._entries) >= _SWEEP_AT:
                self._sweep()
            for part, total in zip(slices, totals, strict=True):
                self._entries[(user_id, part, window.start, window.end)] = _Entry(total, freshness)

    def _sweep(self) -> None:
        kept = {key: entry for key, entry in self._entries.items() if entry.freshness.age() < self._hold}
        if len(kept) >= _SWEEP_AT // 2:
            # More users read within the hold than the bound allows: the oldest totals go first.
            by_age = sorted(kept.items(), key=lambda item: item[1].freshness.known_at)
            kept = dict(by_age[len(by_age) // 2 :])
        self._entries = kept


class ReadCircuit:
    """Which per-user reads from ClickHouse to skip for ``skip_seconds`` after one failed.

    A server that cannot be reached or did not answer in time stops every read; a query the
    server answered with an error (a user whose shard is down) stops that user's only, so the
    users of shards still up keep being read. At most a few reads run at once (:meth:`run`).
    Apart from :meth:`run`, called on the event loop only.
    """

    def __init__(self, skip_seconds: float = 1.0) -> None:
        self._skip_seconds = skip_seconds
        self._all_until = 0.0
        self._users: dict[str, float] = {}
        self._running = threading.BoundedSemaphore(_RUNNING_MAX)

    def allows(self, user_id: str) -> bool:
        """Whether a read of ``user_id`` may be tried now."""
        now = time.monotonic()
        return now >= self._all_until and self._users.get(user_id, 0.0) <= now

    def run(self, read: Callable[[], T]) -> T:
        """``read()`` in this thread; TimeoutError at once when as many reads are still under way."""
        if not self._running.acquire(blocking=False):
            raise TimeoutError(f"{_RUNNING_MAX} reads of ClickHouse are still waiting for an answer")
        try:
            return read()
        finally:
            self._running.release()

    def succeeded(self, user_id: str) -> None:
        """A read of ``user_id`` answered."""
        self._users.pop(user_id, None)

    def failed(self, user_id: str, exc: BaseException) -> None:
        """A read of ``user_id`` failed with ``exc``: skip it (or every read) for a while."""
        until = time.monotonic() + self._skip_seconds
        if not _server_refused(exc):
            self._all_until = until
            return
        if len(self._users) >= _SKIPPED_USERS_MAX:
            now = time.monotonic()
            self._users = {user: end for user, end in self._users.items() if end > now}
        if len(self._users) >= _SKIPPED_USERS_MAX:
            self._all_until = until
        else:
            self._users[user_id] = until


def _server_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the server's own answer (it is up), not a failure to reach it in time."""
    return isinstance(exc, DatabaseError) and not isinstance(exc, OperationalError)


@contextmanager
def _socket_timeout(client: Client, seconds: float | None) -> Iterator[None]:
    """``client``'s connect and read timeouts set to ``seconds`` for the block (an embedded engine has none)."""
    if seconds is None or not isinstance(client, HttpClient):
        yield
        return
    kept = client.timeout
    client.timeout = Timeout(connect=seconds, read=seconds)
    try:
        yield
    finally:
        client.timeout = kept
