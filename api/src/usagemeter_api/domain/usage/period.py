"""A user's usage in a limit's window: from the in-memory view on the event loop, else from ClickHouse.

When the view is stale (its refresh, which reads every shard, fails) the user's figures are
read from ClickHouse instead, which asks only that user's shard: the same sums the view adds
up, fresh. While they cannot be read either, the usage the API holds answers, marked stale:
the view's last totals, or the totals last read for that user. Held figures older than
``quota_max_staleness_seconds`` are refused (:class:`~usagemeter_api.errors.UsageUnavailable`), and a
user the API holds nothing for gets ClickHouse's own error: usage is never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Protocol, cast

import anyio
from clickhouse_connect.driver.exceptions import Error as ClickHouseError

from usagemeter_api.core.pool import ClientPool
from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.usage.cache import Minutes, Reading, UsageCache
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.errors import ClickHouseUnavailable, UsageUnavailable

__all__ = ["PeriodUsage"]

logger = logging.getLogger(__name__)

#: How long a read standing in for the view's stale figures may take before they answer instead:
#: a hung server must not hold up quota reads (the clients' own timeouts are minutes long).
DIRECT_READ_TIMEOUT_SECONDS = 1.0


class _View(Protocol):
    """What the in-memory view answers: micro-units per slice in a window, or None when it cannot."""

    @property
    def freshness(self) -> Freshness | None: ...

    def used_in(self, user_id: str, reads: Sequence[tuple[Sequence[Slice], Window]]) -> list[list[int] | None]: ...


class PeriodUsage:
    """Every route's answer to "how much has this user used in this period": view, cache, then ClickHouse.

    ``max_staleness_seconds`` bounds how old figures held through an outage may be.
    """

    def __init__(
        self, live: LiveUsage | None, cache: UsageCache, pool: ClientPool, *, max_staleness_seconds: float
    ) -> None:
        self._live = live
        self._cache = cache
        self._pool = pool
        self._max_staleness = max_staleness_seconds

    async def reading(self, user_id: str, slices: Sequence[Slice], window: Window, *, reuse: bool = False) -> Reading:
        """Micro-units per slice of ``user_id`` in ``window`` (in the order asked), and how fresh they are.

        The view answers without leaving the event loop; until it is loaded, and for windows
        it does not hold, ClickHouse is read in the thread pool on a pooled client (``reuse``:
        a total read within ``quota_cache_seconds`` is reused). UsageUnavailable when the
        figures held through an outage are too old; ClickHouse's error when nothing is held.
        """
        return (await self.readings(user_id, [(slices, window)], reuse=reuse))[0]

    async def readings(
        self, user_id: str, reads: Sequence[tuple[Sequence[Slice], Window]], *, reuse: bool = False
    ) -> list[Reading]:
        """:meth:`reading` of each (slices, window) of ``reads``: the view answers all it can at one moment."""
        done = []
        for (slices, window), reading in zip(reads, _from_view(self._live, user_id, reads), strict=True):
            if not slices:
                reading = [], Freshness.now()
            elif reading is None:
                reading = await self._from_clickhouse(user_id, slices, window, reuse=reuse)
            elif reading[1].stale:
                reading = await self._instead_of_stale(reading, user_id, slices, window, reuse=reuse)
            self._refuse_if_too_old(reading[1])
            done.append(reading)
        return done

    async def minutes(self, user_id: str, slices: Sequence[Slice], window: Window) -> Minutes:
        """The usage per minute of ``slices`` in ``window`` (one query, reused briefly): when rolling limits free up."""
        return await self._pool.call(self._cache.minutes, user_id, slices, window)

    async def _from_clickhouse(self, user_id: str, slices: Sequence[Slice], window: Window, *, reuse: bool) -> Reading:
        cache = self._cache
        recent = cache.recent(user_id, slices, window) if reuse else None
        if recent is not None:
            return recent
        try:
            return await self._pool.call(cache.read, user_id, slices, window)
        except (ClickHouseUnavailable, ClickHouseError) as exc:
            held = cache.held(user_id, slices, window)
            if held is None:
                raise
            logger.debug("answering held usage of %r: ClickHouse cannot be read: %s", user_id, exc)
            return held

    async def _instead_of_stale(
        self, stale: Reading, user_id: str, slices: Sequence[Slice], window: Window, *, reuse: bool
    ) -> Reading:
        """The user's figures read from ClickHouse in place of the view's stale ones; the latest held if that fails."""
        cache = self._cache
        recent = cache.recent(user_id, slices, window) if reuse else None
        if recent is not None:
            return recent
        if cache.circuit.allows(user_id):
            try:
                reading = await _read_within_timeout(self._pool, cache, user_id, slices, window)
            except (ClickHouseUnavailable, ClickHouseError, TimeoutError) as exc:
                cache.circuit.failed(user_id, exc)
                logger.debug("answering the view's stale usage of %r: ClickHouse cannot be read: %s", user_id, exc)
            else:
                cache.circuit.succeeded(user_id)
                return reading
        held = cache.held(user_id, slices, window)
        # An earlier read of this user may be fresher than the view's last refresh.
        return held if held is not None and held[1].known_at > stale[1].known_at else stale

    def _refuse_if_too_old(self, freshness: Freshness) -> None:
        bound = self._max_staleness
        if not freshness.stale or freshness.age() <= bound:
            return
        as_of = freshness.as_of.isoformat().replace("+00:00", "Z")
        raise UsageUnavailable(
            f"usage figures are unavailable: ClickHouse cannot be read, and the figures last read from it"
            f" (at {as_of}, {freshness.age():.0f} s ago) are older than USAGEMETER_QUOTA_MAX_STALENESS_SECONDS"
            f" ({bound:g} s) allows"
        )


def _from_view(
    live: LiveUsage | None, user_id: str, reads: Sequence[tuple[Sequence[Slice], Window]]
) -> list[Reading | None]:
    if live is None:
        return [None] * len(reads)
    view = cast(_View, live)
    # Read before the totals, so the totals are at least as fresh as they are said to be.
    freshness = view.freshness
    found = view.used_in(user_id, reads)
    # Only a list of micro-units per slice answers; anything else is a view that cannot.
    if not isinstance(found, list) or freshness is None:
        return [None] * len(reads)
    return [(totals, freshness) if isinstance(totals, list) else None for totals in found]


async def _read_within_timeout(
    pool: ClientPool, cache: UsageCache, user_id: str, slices: Sequence[Slice], window: Window
) -> Reading:
    """``cache.read`` on a pooled client, given up after about :data:`DIRECT_READ_TIMEOUT_SECONDS` (TimeoutError)."""

    def borrowing() -> Reading:
        with pool.client() as client:
            return cache.read(client, user_id, slices, window, timeout_seconds=DIRECT_READ_TIMEOUT_SECONDS)

    # Opening a client is not bounded by the socket timeout: a thread still connecting is left
    # to finish, and the circuit caps how many such threads there are.
    with anyio.fail_after(DIRECT_READ_TIMEOUT_SECONDS * 2):
        return await anyio.to_thread.run_sync(partial(cache.circuit.run, borrowing), abandon_on_cancel=True)
