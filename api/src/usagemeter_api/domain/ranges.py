"""The time range of an analytics request: the current period, or explicit ``from`` / ``to``.

Ranges are read to the minute, the resolution of the rollups, and bounded so one request
cannot ask for an unbounded series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from usagemeter_api.domain.periods import Window, day_start, period_window, to_utc
from usagemeter_api.domain.plans import PeriodKind
from usagemeter_api.errors import InvalidRange
from usagemeter_api.schemas.analytics import AnalyticsPeriod, Interval

__all__ = ["MAX_SPAN", "AnalyticsPeriod", "Interval", "UsageRange", "buckets", "usage_range"]


#: The longest range each interval may cover: a month of hours, a year of days.
MAX_SPAN: dict[str, timedelta] = {"hour": timedelta(days=31), "day": timedelta(days=366)}
_STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_PERIOD_KIND: dict[str, PeriodKind] = {"today": "day", "week": "week", "month": "month"}
# ClickHouse DateTime covers 1970 to 2106; anything outside cannot hold usage.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2106, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class UsageRange:
    """What an analytics request reads: ``window``, bucketed by ``interval``, and the period it reports."""

    window: Window
    interval: Interval
    period: AnalyticsPeriod | None
    reported: Window


def usage_range(
    now: datetime, period: AnalyticsPeriod | None, start: datetime | None, end: datetime | None, interval: Interval
) -> UsageRange:
    """The range asked for by ``period`` or ``start``/``end`` (naive: UTC); InvalidRange when it is malformed,
    reversed or too long."""
    if start is None and end is None:
        return _period_range(period or "month", interval, now)
    if period is not None:
        raise _invalid("give either period or from/to, not both")
    if start is None or end is None:
        raise _invalid("from and to go together: give both, or neither for the current period")
    window = Window(_minute(start, "from"), _minute(end, "to"))
    if window.start >= window.end:
        raise _invalid(f"from ({window.start.isoformat()}) must be before to ({window.end.isoformat()}), to the minute")
    if window.end - window.start > MAX_SPAN[interval]:
        raise _invalid(f"a range with interval={interval} may span at most {MAX_SPAN[interval].days} days")
    return UsageRange(window=window, interval=interval, period=None, reported=window)


def buckets(window: Window, interval: Interval) -> list[tuple[datetime, Window]]:
    """Each UTC hour or day ``window`` touches: its aligned start, and its part inside ``window``."""
    step = _STEP[interval]
    first = day_start(window.start.date()) if interval == "day" else window.start.replace(minute=0, second=0)
    count = max(0, -(-(window.end - first) // step))
    starts = [first + step * index for index in range(count)]
    return [(start, Window(max(start, window.start), min(start + step, window.end))) for start in starts]


def _period_range(period: AnalyticsPeriod, interval: Interval, now: datetime) -> UsageRange:
    # The series of the current period runs up to the end of the current bucket.
    reported = period_window(_PERIOD_KIND[period], now)
    current = buckets(Window(to_utc(now), to_utc(now) + timedelta(microseconds=1)), interval)[0][0]
    end = min(reported.end, current + _STEP[interval])
    return UsageRange(window=Window(reported.start, end), interval=interval, period=period, reported=reported)


def _minute(moment: datetime, name: str) -> datetime:
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (OverflowError, ValueError) as exc:
        raise _invalid(f"{name} is out of range: {exc}") from exc
    if not _EARLIEST <= utc <= _LATEST:
        raise _invalid(f"{name} must lie between {_EARLIEST.date()} and {_LATEST.date()}")
    return utc.replace(second=0, microsecond=0)


def _invalid(detail: str) -> InvalidRange:
    return InvalidRange(detail)
