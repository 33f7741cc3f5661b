"""Three period totals per (user, feature) pair, kept compact and out of the garbage collector's sight.

A million pairs as ``dict[tuple[str, str], list[float]]`` are millions of GC-tracked
objects, and each full collection walks them all while the event loop waits. Here a
pair is one ``str`` key in a ``dict[str, int]`` (neither is tracked) naming a row of
one float64 array; floats hold every count below 2**53 exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["PERIODS", "PairTotals", "pair_key"]

#: Totals per pair: the current month, ISO week and day, in this column order.
PERIODS = 3

_INITIAL_ROWS = 1024


def pair_key(user_id: str, feature_key: str) -> str:
    """One string per pair; the feature's length first keeps any two pairs apart whatever they contain."""
    return f"{len(feature_key)}:{feature_key}:{user_id}"


class PairTotals:
    """A growing table of ``PERIODS`` totals per pair key.

    One thread writes (:meth:`add`); readers may read concurrently and see each row
    either before or after a write, never torn across a growth of the table.
    """

    def __init__(self, capacity: int = _INITIAL_ROWS) -> None:
        self._rows: dict[str, int] = {}
        self._sums: npt.NDArray[np.float64] = np.zeros((max(capacity, 1), PERIODS))

    def __len__(self) -> int:
        return len(self._rows)

    @classmethod
    def of(cls, keys: Sequence[str], sums: npt.NDArray[np.float64]) -> PairTotals:
        """A table holding ``sums[i]`` for ``keys[i]`` (keys repeated are added up)."""
        table = cls(len(keys))
        table.add(keys, sums)
        return table

    def total(self, key: str, period: int) -> float:
        """The total of ``period`` (a column index) for ``key``; 0 for a pair never seen."""
        row = self._rows.get(key)
        return 0.0 if row is None else float(self._sums[row, period])

    def rows_for(self, keys: Sequence[str]) -> npt.NDArray[np.intp]:
        """The rows of ``keys``, adding rows (zero) for keys not yet held."""
        rows = self._rows
        new = [key for key in dict.fromkeys(keys) if key not in rows]
        if new:
            self._reserve(len(rows) + len(new))
            start = len(rows)
            rows.update(zip(new, range(start, start + len(new)), strict=True))
        return np.fromiter((rows[key] for key in keys), dtype=np.intp, count=len(keys))

    def add_rows(self, rows: npt.NDArray[np.intp], sums: npt.NDArray[np.float64]) -> None:
        """Add ``sums[i]`` to row ``rows[i]`` (rows from :meth:`rows_for`)."""
        np.add.at(self._sums, rows, sums)

    def add(self, keys: Sequence[str], sums: npt.NDArray[np.float64]) -> None:
        """Add ``sums[i]`` to the totals of ``keys[i]``."""
        self.add_rows(self.rows_for(keys), sums)

    def _reserve(self, needed: int) -> None:
        # Grown into a copy that replaces the array in one assignment, so a reader holds
        # either the old array or the new one, both complete.
        if needed > len(self._sums):
            grown = np.zeros((max(needed, 2 * len(self._sums)), PERIODS))
            grown[: len(self._sums)] = self._sums
            self._sums = grown
