"""Cumulative monotonic sums turned into deltas, per series.

The rollups only add up delta points, so a cumulative sender's running totals
are differenced here before they are stored. The states of the points that
reached the spool live in one :class:`SeriesTable` shared with the spool's
durable state (see :meth:`CumulativeToDelta.restore`); conversions whose
request is not durable yet are kept beside it until their record is written
(:meth:`CumulativeToDelta.settle`) or refused (:meth:`CumulativeToDelta.rollback`).

At most ``max_series`` series are tracked: a point of a new series beyond that
is refused (:class:`SeriesLimitReached`) while known series keep being converted;
series idle for the configured time are forgotten by the spool's state.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from usagemeter_collector._spool.series import SeriesState, SeriesTable, series_digest
from usagemeter_collector._telemetry import Telemetry

#: Default bound on tracked cumulative series (``USAGEMETER_CUMULATIVE_MAX_SERIES``).
DEFAULT_MAX_SERIES = 1_000_000


class SeriesLimitReached(Exception):
    """A point starts a new cumulative series while the most series the collector tracks are tracked."""


class Delta(NamedTuple):
    """A cumulative point as an increment: ``value`` counted over ``(start_time, time]``.

    ``value`` is None when the point is a duplicate (not newer than the last
    one seen of its series) and must be dropped.
    """

    start_time: int
    value: float | None


@dataclass
class Undo:
    """What :meth:`CumulativeToDelta.rollback` needs to forget a batch of conversions (series digests)."""

    entries: list[tuple[bytes, SeriesState | None, SeriesState]] = field(default_factory=list)


class CumulativeToDelta:
    """Per-series memory of cumulative sums, keyed by the caller's series identity."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES, telemetry: Telemetry | None = None) -> None:
        self._durable = SeriesTable()
        self._pending: dict[bytes, SeriesState] = {}
        #: Pending series that were new when converted: with the table, what counts against the limit.
        self._fresh: set[bytes] = set()
        self._max_series = max_series
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._durable) + sum(1 for digest in self._fresh if digest not in self._durable)

    def restore(self, series: SeriesTable) -> None:
        """Convert against ``series``, the table the spool's durable state keeps up to date."""
        with self._lock:
            self._durable = series
            self._pending, self._fresh = {}, set()

    def convert(self, key: Hashable, start_time: int, time: int, value: float, undo: Undo) -> Delta:
        """The increment a cumulative point adds to its series, recording it in ``undo``.

        A run starts at an unknown series, a changed start time or a value that
        went down (a counter reset); its first point counts its whole value.
        Raises SeriesLimitReached for a new series when ``max_series`` are tracked.
        """
        digest = series_digest(key)
        with self._lock:
            pending = self._pending.get(digest)
            last = pending if pending is not None else self._durable.get(digest)
            if last is None:
                self._admit(digest)
            elif time <= last.time:
                return Delta(last.time, None)
            current = SeriesState(start_time, time, value)
            self._pending[digest] = current
            undo.entries.append((digest, pending, current))
        if last is None or last.start_time != start_time or value < last.value:
            return Delta(start_time, value)
        return Delta(last.time, value - last.value)

    def _admit(self, digest: bytes) -> None:
        if self._tracked() >= self._max_series:
            self._durable.expire_idle()  # idle series make room before a new one is refused
        if self._tracked() >= self._max_series:
            self._telemetry.cumulative_series_refused += 1
            raise SeriesLimitReached(
                f"cumulative series limit reached: {self._max_series} series are tracked "
                "(USAGEMETER_CUMULATIVE_MAX_SERIES); points of new series are refused until idle ones expire"
            )
        self._fresh.add(digest)

    def _tracked(self) -> int:
        # A pending update of a known series is already counted by the table.
        return len(self._durable) + len(self._fresh)

    def settle(self, undo: Undo) -> None:
        """The conversions in ``undo`` reached the spool (and its durable state): stop keeping them aside."""
        with self._lock:
            for digest, _, applied in undo.entries:
                if self._pending.get(digest) == applied:
                    del self._pending[digest]
                    self._fresh.discard(digest)

    def rollback(self, undo: Undo) -> None:
        """Forget the conversions in ``undo`` so a retry of the same points counts them again.

        A series that moved on since (a later point was converted) keeps its newer state.
        """
        with self._lock:
            for digest, previous, applied in reversed(undo.entries):
                if self._pending.get(digest) != applied:
                    continue
                durable = self._durable.get(digest)
                # What is back in force may have reached the spool meanwhile: then the table speaks for it.
                if previous is None or (durable is not None and durable.time >= previous.time):
                    del self._pending[digest]
                    self._fresh.discard(digest)
                else:
                    self._pending[digest] = previous
