"""What checking one export request produced: its rows per table, what it refused and why, its conversion undo log."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from usagemeter_collector._checks.cumulative import Undo
from usagemeter_collector._spool.records import Row

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
