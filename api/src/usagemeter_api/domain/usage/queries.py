"""Usage read from the rollups, always with ``sum(Uses)`` so unmerged parts count.

A range's total is its whole UTC days from the day rollup plus its partial
first and last days from the minute rollup, which keeps queries over long
periods cheap and exact to the minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.periods import Window, day_start, to_utc
from usagemeter_clickhouse import Client, tables

__all__ = ["as_number", "daily_usage", "usage_series", "usage_totals"]

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

# Periods are whole UTC days, so the common case reads the day rollup alone.
_WHOLE_DAYS_SQL = f"""
SELECT FeatureKey, sum(Uses) FROM {tables.USAGE_DAY}
WHERE UserId = {{user:String}} AND FeatureKey IN {{keys:Array(String)}}
  AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
GROUP BY FeatureKey
"""

_DAILY_SQL = f"""
SELECT Day, sum(Uses) FROM {tables.USAGE_DAY}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
  AND Day >= {{first_day:Date}} AND Day <= {{last_day:Date}}
GROUP BY Day
ORDER BY Day
"""


_HOURLY_SQL = f"""
SELECT toStartOfHour(Minute) AS Bucket, sum(Uses) FROM {tables.USAGE_MINUTE}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
  AND Minute >= {{start:DateTime('UTC')}} AND Minute < {{end:DateTime('UTC')}}
GROUP BY Bucket
"""

_DAY_BUCKETS_SQL = f"""
SELECT Bucket, sum(Uses) FROM (
    SELECT Day AS Bucket, Uses FROM {tables.USAGE_DAY}
    WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
      AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
    UNION ALL
    SELECT toDate(Minute) AS Bucket, Uses FROM {tables.USAGE_MINUTE}
    WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
      AND ((Minute >= {{head_start:DateTime('UTC')}} AND Minute < {{head_end:DateTime('UTC')}})
        OR (Minute >= {{tail_start:DateTime('UTC')}} AND Minute < {{tail_end:DateTime('UTC')}}))
)
GROUP BY Bucket
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


def _split_parameters(window: Window) -> dict[str, object]:
    split = _split(window)
    return {
        "first_day": split.first_day,
        "end_day": split.end_day,
        "head_start": naive_utc(split.head.start),
        "head_end": naive_utc(split.head.end),
        "tail_start": naive_utc(split.tail.start),
        "tail_end": naive_utc(split.tail.end),
    }


def usage_totals(client: Client, user_id: str, feature_keys: Sequence[str], window: Window) -> dict[str, float]:
    """Uses per feature key of ``user_id`` in ``window`` (to the minute); keys without usage are absent."""
    if not feature_keys:
        return {}
    split = _split(window)
    whole_days = split.head.start == split.head.end and split.tail.start == split.tail.end
    parameters = {"user": user_id, "keys": list(feature_keys), **_split_parameters(window)}
    rows = client.query(_WHOLE_DAYS_SQL if whole_days else _TOTALS_SQL, parameters=parameters).result_rows
    return {str(key): float(total) for key, total in rows}


def usage_series(
    client: Client, user_id: str, feature_key: str, window: Window, interval: Literal["hour", "day"]
) -> dict[datetime, float]:
    """Uses of one feature in ``window`` (to the minute) per UTC hour or day, keyed by the bucket's start.

    Buckets without usage are absent; the edge buckets count only their part inside ``window``.
    """
    if interval == "hour":
        parameters: dict[str, object] = {"start": naive_utc(window.start), "end": naive_utc(window.end)}
        rows = client.query(_HOURLY_SQL, parameters={"user": user_id, "feature": feature_key, **parameters})
        return {bucket.replace(tzinfo=UTC): float(total) for bucket, total in rows.result_rows}
    parameters = {"user": user_id, "feature": feature_key, **_split_parameters(window)}
    rows = client.query(_DAY_BUCKETS_SQL, parameters=parameters)
    return {day_start(day): float(total) for day, total in rows.result_rows}


def daily_usage(client: Client, user_id: str, feature_key: str, first_day: date, last_day: date) -> dict[date, float]:
    """Uses of one feature per UTC day from ``first_day`` to ``last_day`` inclusive; days without usage are absent."""
    parameters = {"user": user_id, "feature": feature_key, "first_day": first_day, "last_day": last_day}
    rows = client.query(_DAILY_SQL, parameters=parameters).result_rows
    return {day: float(total) for day, total in rows}


def as_number(value: float) -> int | float:
    """``value`` as an int when it is integral, so counts read as counts."""
    return int(value) if float(value).is_integer() else value
