"""UTC period arithmetic: the day, ISO week or calendar month around a moment, and the range of a limit's window."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal

from usagemeter_api.schemas.plans import LimitWindow

__all__ = ["LIFETIME", "Window", "day_start", "limit_window", "period_window", "to_utc"]


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


#: The range of a lifetime limit: everything ever counted.
LIFETIME = Window(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


def limit_window(window: LimitWindow, now: datetime, anchor: datetime | None = None) -> Window:
    """The range ``window`` covers at ``now``; ``anchor`` is when a cycle started (the user's assignment).

    Rolling windows hold the current minute and the whole minutes before it; cycles run monthly
    from the anchor's UTC day (a day past a month's end is that month's last day), and follow
    the calendar month without an anchor.
    """
    now = to_utc(now)
    if window.kind == "rolling":
        minute = now.replace(second=0, microsecond=0)
        assert window.minutes is not None
        return Window(minute - timedelta(minutes=window.minutes - 1), minute + timedelta(minutes=1))
    if window.kind == "lifetime":
        return LIFETIME
    if window.kind == "cycle":
        return _cycle_window(anchor, now.date()) if anchor is not None else period_window("month", now)
    return period_window(window.kind, now)


def _cycle_window(anchor: datetime, today: date) -> Window:
    day = to_utc(anchor).day
    start = _month_day(today.year, today.month, day)
    if start > today:
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        start = _month_day(year, month, day)
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    return Window(day_start(start), day_start(_month_day(year, month, day)))


def _month_day(year: int, month: int, day: int) -> date:
    """``day`` of the month, or its last day when the month is shorter."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))
