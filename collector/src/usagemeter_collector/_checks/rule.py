"""The rows one export request turns into, and what it had to refuse."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from usagemeter_collector._checks.cumulative import Undo

Row = tuple[Any, ...]

#: The largest ``feature.usage`` value a point may carry: an exact integer in a Float64, and a billion such points
#: still sum to a finite total.
DEFAULT_MAX_POINT_VALUE = 1e15
#: The longest ``user.id`` or ``feature.key``, in bytes of its stored text.
DEFAULT_MAX_ID_BYTES = 256
#: The latest nanosecond timestamp a DateTime64(9) column holds: a later one does not fit its Int64.
LATEST_STORABLE_NS = 2**63 - 1

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


def any_unstorable_time(stamped: Iterable[Any]) -> bool:
    """Whether any of ``stamped`` (exemplars, span events) has a ``time_unix_nano`` no column can hold."""
    return any(item.time_unix_nano > LATEST_STORABLE_NS for item in stamped)


class TimeWindow(NamedTuple):
    """The accepted range of point timestamps, in Unix nanoseconds."""

    earliest: int
    latest: int

    @classmethod
    def around_now(cls, retention_days: int, max_future_seconds: int) -> TimeWindow:
        """From the start of raw retention to ``max_future_seconds`` ahead."""
        now = time.time_ns()
        return cls(now - retention_days * 86_400 * 10**9, now + max_future_seconds * 10**9)

    def problem(self, start_ns: int, time_ns: int) -> str | None:
        """Why a point with these timestamps is refused, or None when it is in range."""
        if time_ns < self.earliest:
            return "timestamp older than the raw data retention"
        if time_ns > self.latest or start_ns > self.latest:
            return "timestamp too far in the future"
        return None


class PointRules(NamedTuple):
    """What a data point must satisfy to be stored: timestamps in ``window`` and, for ``feature.usage``,
    a value of at most ``max_value`` and ids of at most ``max_id_bytes``."""

    window: TimeWindow
    max_value: float = DEFAULT_MAX_POINT_VALUE
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES
