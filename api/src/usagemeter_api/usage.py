"""Usage read from the rollups, always with ``sum(Uses)`` so unmerged parts count.

A range's total is its whole UTC days from the day rollup plus its partial
first and last days from the minute rollup, which keeps queries over long
periods cheap and exact to the minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from usagemeter_api.periods import Window, day_start, to_utc
from usagemeter_clickhouse import Client, tables

__all__ = ["as_number", "daily_usage", "usage_totals"]

_TOTALS_SQL = f"""
SELECT FeatureKey, sum(Uses) FROM (
    SELECT FeatureKey, Uses FROM {tables.USAGE_DAY}
    WHERE UserId = {{user:String}} AND FeatureKey IN {{keys:Array(String)}}
      AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
    UNION ALL
    SELECT FeatureKey, Uses FROM {tables.USAGE_MINUTE}
    WHERE UserId = {{user:String}} AND FeatureKey IN {{keys:Array(String)}}
      AND ((Minute >= {{head_start:DateTime('UTC')}} AND Minute < {{head_end:DateTime('UTC')}})
        OR (Minute >= {{tail_start:DateTime('UTC')}} AND Minute < {{tail_end:DateTime('UTC')}}))
)
GROUP BY FeatureKey
"""

_DAILY_SQL = f"""
SELECT Day, sum(Uses) FROM {tables.USAGE_DAY}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
  AND Day >= {{first_day:Date}} AND Day <= {{last_day:Date}}
GROUP BY Day
ORDER BY Day
"""


@dataclass(frozen=True)
class _Split:
    """A range cut into a partial head day, whole days ``[first_day, end_day)`` and a partial tail day."""

    head: Window
    first_day: date
    end_day: date
    tail: Window


def _split(window: Window) -> _Split:
    start = to_utc(window.start).replace(microsecond=0)
    end = to_utc(window.end).replace(microsecond=0)
    first_day = start.date() if start == day_start(start.date()) else start.date() + timedelta(days=1)
    end_day = end.date()
    if first_day >= end_day:
        return _Split(Window(start, end), first_day, first_day, Window(end, end))
    return _Split(Window(start, day_start(first_day)), first_day, end_day, Window(day_start(end_day), end))


def usage_totals(client: Client, user_id: str, feature_keys: Sequence[str], window: Window) -> dict[str, float]:
    """Uses per feature key of ``user_id`` in ``window`` (to the minute); keys without usage are absent."""
    if not feature_keys:
        return {}
    split = _split(window)
    parameters: dict[str, object] = {
        "user": user_id,
        "keys": list(feature_keys),
        "first_day": split.first_day,
        "end_day": split.end_day,
        "head_start": _naive(split.head.start),
        "head_end": _naive(split.head.end),
        "tail_start": _naive(split.tail.start),
        "tail_end": _naive(split.tail.end),
    }
    rows = client.query(_TOTALS_SQL, parameters=parameters).result_rows
    return {str(key): float(total) for key, total in rows}


def daily_usage(client: Client, user_id: str, feature_key: str, first_day: date, last_day: date) -> dict[date, float]:
    """Uses of one feature per UTC day from ``first_day`` to ``last_day`` inclusive; days without usage are absent."""
    parameters = {"user": user_id, "feature": feature_key, "first_day": first_day, "last_day": last_day}
    rows = client.query(_DAILY_SQL, parameters=parameters).result_rows
    return {day: float(total) for day, total in rows}


def as_number(value: float) -> int | float:
    """``value`` as an int when it is integral, so counts read as counts."""
    return int(value) if float(value).is_integer() else value


def _naive(moment: datetime) -> datetime:
    # The placeholders are typed DateTime('UTC'), so the wall-clock value is read as UTC.
    return moment.replace(tzinfo=None)
