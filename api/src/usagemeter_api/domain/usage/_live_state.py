"""What the in-memory usage view holds between cycles: its columns, their base and the unsettled part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.usage._entries import EntryTable, Rows

__all__ = ["Delta", "Recent", "Relaid", "State", "in_windows"]


class Delta(NamedTuple):
    """Per-column changes of some rows' totals, and which of them left the int64 range."""

    rows: Rows
    sums: npt.NDArray[np.int64]
    overflow: npt.NDArray[np.bool_]


def in_windows(
    rows: Rows,
    minutes: npt.NDArray[np.int64],
    micros: npt.NDArray[np.int64],
    overflow: npt.NDArray[np.bool_],
    windows: Sequence[Window],
) -> Delta:
    """Per distinct row, the micro-units of its minutes (epoch seconds) inside each window: a column per window.

    ``rows[i]`` used ``micros[i]`` in minute ``minutes[i]``; a row may come with many minutes. A row
    flagged in ``overflow``, or whose sum would leave the int64 range, is flagged in the result.
    """
    columns = len(windows)
    if not len(rows):
        return Delta(rows, np.zeros((0, columns), dtype=np.int64), np.zeros(0, dtype=bool))
    order = np.argsort(rows, kind="stable")
    rows, minutes, micros, overflow = rows[order], minutes[order], micros[order], overflow[order]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    inside = np.column_stack([_inside(minutes, window) for window in windows])
    cells = np.where(inside, micros[:, None], 0)
    sums = np.add.reduceat(cells, starts, axis=0)
    # A sum that wrapped is 2**64 away from the same sum in floating point, far beyond its rounding.
    approximate = np.add.reduceat(cells.astype(np.float64), starts, axis=0)
    wrapped = (np.abs(sums.astype(np.float64) - approximate) > _WRAPPED).any(axis=1)
    sums[wrapped] = 0
    return Delta(rows[starts], sums, np.logical_or.reduceat(overflow, starts) | wrapped)


_WRAPPED = 2.0**62


def _inside(minutes: npt.NDArray[np.int64], window: Window) -> npt.NDArray[np.bool_]:
    return (minutes >= int(window.start.timestamp())) & (minutes < int(window.end.timestamp()))


@dataclass(frozen=True)
class Recent:
    """Per-column totals ingested from the watermark on (not settled yet), for the rows that have any."""

    rows: dict[int, int]
    sums: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, columns: int) -> Recent:
        """No row."""
        return cls({}, np.zeros((0, columns), dtype=np.int64))

    def extended(self, rows: Rows, sums: npt.NDArray[np.int64]) -> Recent:
        """These totals and ``sums[i]`` for ``rows[i]`` (rows not held here yet)."""
        start = len(self.sums)
        index = dict(self.rows)
        index.update(zip(rows.tolist(), range(start, start + len(rows)), strict=True))
        return Recent(index, np.concatenate([self.sums, sums]))

    def relaid(self, keep: Sequence[int], added: int) -> Recent:
        """The columns ``keep`` in that order, then ``added`` zero ones."""
        return Recent(self.rows, _relaid(self.sums, keep, added))


@dataclass
class State:
    """The view's columns (``names``, the window each one's base holds, None while it holds none yet),
    the base (usage ingested before ``watermark``), the unsettled part, and the windows that answer."""

    watermark: datetime
    table: EntryTable
    names: list[str] = field(default_factory=list)
    windows: list[Window | None] = field(default_factory=list)
    recent: Recent = field(default_factory=lambda: Recent.empty(0))
    answering: dict[Window, int] = field(default_factory=dict)

    def add(self, delta: Delta, columns: Sequence[int] | None = None) -> None:
        """Add ``delta`` to the base's ``columns`` (default: all); rows it flags overflowed stay so."""
        self.table.add(delta.rows, delta.sums, columns)
        if delta.overflow.any():
            self.table.overflowed.update(delta.rows[delta.overflow].tolist())

    def relaid(self, names: list[str]) -> Relaid:
        """Columns ``names``: held ones kept with their totals, new ones zero and holding no window yet."""
        held = [name for name in names if name in self.names]
        keep = [self.names.index(name) for name in held]
        added = len(names) - len(held)
        # A window that did not answer (its move not yet followed by a refresh) still does not.
        renumbered = {old: new for new, old in enumerate(keep)}
        return Relaid(
            sums=_relaid(self.table.sums, keep, added),
            recent=self.recent.relaid(keep, added),
            names=held + [name for name in names if name not in self.names],
            windows=[self.windows[column] for column in keep] + [None] * added,
            answering={window: renumbered[old] for window, old in self.answering.items() if old in renumbered},
        )


@dataclass(frozen=True)
class Relaid:
    """A state's columns laid out anew, ready to be swapped in at once."""

    sums: npt.NDArray[np.int64]
    recent: Recent
    names: list[str]
    windows: list[Window | None]
    answering: dict[Window, int]

    def publish(self, state: State) -> None:
        """Swap this layout into ``state`` (under the readers' lock)."""
        state.table.sums, state.recent = self.sums, self.recent
        state.names, state.windows, state.answering = self.names, self.windows, self.answering


def _relaid(sums: npt.NDArray[np.int64], keep: Sequence[int], added: int) -> npt.NDArray[np.int64]:
    relaid = np.zeros((len(sums), len(keep) + added), dtype=np.int64)
    relaid[:, : len(keep)] = sums[:, list(keep)]
    return relaid
