"""UTC period arithmetic: the day, ISO week or calendar month around a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal

__all__ = ["Window", "day_start", "period_window", "to_utc"]


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def days(self) -> list[date]:
        """The calendar days the window touches."""
        last = (self.end - timedelta(microseconds=1)).date()
        count = (last - self.start.date()).days + 1
        return [self.start.date() + timedelta(days=offset) for offset in range(max(count, 0))]


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused because its zone is unknown."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the beginning of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def period_window(kind: Literal["day", "week", "month"], now: datetime) -> Window:
    """The period of ``kind`` that contains ``now``: the UTC day, ISO week (Monday first) or calendar month."""
    return _period_of_day(kind, to_utc(now).date())


@lru_cache(maxsize=64)
def _period_of_day(kind: Literal["day", "week", "month"], today: date) -> Window:
    # Every quota check asks for the period of the same few days.
    if kind == "day":
        return Window(day_start(today), day_start(today + timedelta(days=1)))
    if kind == "week":
        monday = today - timedelta(days=today.weekday())
        return Window(day_start(monday), day_start(monday + timedelta(days=7)))
    if kind == "month":
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Window(day_start(first), day_start(following))
    raise ValueError(f"unknown period {kind!r}: use day, week or month")
