"""The rows one export request turns into, and what it had to refuse."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from usagemeter_collector._cumulative import Undo

Row = tuple[Any, ...]

_REASONS_SHOWN = 5


@dataclass
class Decoded:
    """Rows per table of one request, its refused items with their reasons, and its conversion undo log."""

    rows: defaultdict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    rejected: int = 0
    duplicates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    undo: Undo = field(default_factory=Undo)

    def reject(self, reason: str) -> None:
        """Count one refused data point or span."""
        self.rejected += 1
        self.reasons[reason] += 1

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def error_message(self) -> str:
        """Why items were refused, most frequent reason first."""
        parts = [f"{reason} ({count})" for reason, count in self.reasons.most_common(_REASONS_SHOWN)]
        more = len(self.reasons) - _REASONS_SHOWN
        if more > 0:
            parts.append(f"and {more} more reasons")
        return "; ".join(parts)
