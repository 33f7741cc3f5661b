"""What the in-memory usage view holds between cycles: its columns, their base and the unsettled part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.usage._entries import EntryTable, Rows

__all__ = ["Recent", "State"]


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

    def relaid_sums(self, keep: Sequence[int], added: int) -> npt.NDArray[np.int64]:
        """The base's columns ``keep`` in that order, then ``added`` zero ones (a new array)."""
        return _relaid(self.table.sums, keep, added)


def _relaid(sums: npt.NDArray[np.int64], keep: Sequence[int], added: int) -> npt.NDArray[np.int64]:
    relaid = np.zeros((len(sums), len(keep) + added), dtype=np.int64)
    relaid[:, : len(keep)] = sums[:, list(keep)]
    return relaid
