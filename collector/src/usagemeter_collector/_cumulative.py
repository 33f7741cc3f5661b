"""Cumulative monotonic sums turned into deltas, per series.

The rollups only add up delta points, so a cumulative sender's running totals
are differenced here before they are stored. The state lives in memory; the
spool records every conversion, and :meth:`CumulativeToDelta.restore` seeds it
from them on start.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class SeriesState(NamedTuple):
    """The last point seen of one cumulative series."""

    start_time: int
    time: int
    value: float


class Delta(NamedTuple):
    """A cumulative point as an increment: ``value`` counted over ``(start_time, time]``.

    ``value`` is None when the point is a duplicate (not newer than the last
    one seen of its series) and must be dropped.
    """

    start_time: int
    value: float | None


@dataclass
class Undo:
    """What :meth:`CumulativeToDelta.rollback` needs to forget a batch of conversions."""

    entries: list[tuple[Hashable, SeriesState | None, SeriesState]] = field(default_factory=list)


class CumulativeToDelta:
    """Per-series memory of cumulative sums, keyed by the caller's series identity."""

    def __init__(self) -> None:
        self._series: dict[Hashable, SeriesState] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._series)

    def restore(self, series: Mapping[Hashable, SeriesState]) -> None:
        """Start from the series states recovered from the spool."""
        with self._lock:
            self._series = dict(series)

    def convert(self, key: Hashable, start_time: int, time: int, value: float, undo: Undo) -> Delta:
        """The increment a cumulative point adds to its series, recording it in ``undo``.

        A run starts at an unknown series, a changed start time or a value that
        went down (a counter reset); its first point counts its whole value.
        """
        with self._lock:
            last = self._series.get(key)
            if last is not None and time <= last.time:
                return Delta(last.time, None)
            current = SeriesState(start_time, time, value)
            self._series[key] = current
            undo.entries.append((key, last, current))
        if last is None or last.start_time != start_time or value < last.value:
            return Delta(start_time, value)
        return Delta(last.time, value - last.value)

    def rollback(self, undo: Undo) -> None:
        """Forget the conversions in ``undo`` so a retry of the same points counts them again.

        A series that moved on since (a later point was converted) keeps its newer state.
        """
        with self._lock:
            for key, previous, applied in reversed(undo.entries):
                if self._series.get(key) != applied:
                    continue
                if previous is None:
                    del self._series[key]
                else:
                    self._series[key] = previous
