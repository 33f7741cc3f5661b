"""Usage read from the rollups as exact micro-units, always with ``sum(Quantity)`` so unmerged parts count.

A range's total is its whole UTC days from the day rollup plus its partial
first and last days from the minute rollup, which keeps queries over long
periods cheap and exact to the minute; a lifetime total comes from the month
rollup, which has no TTL. Feature totals are the rows with ``DimensionKey = ''``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.periods import LIFETIME, Window, day_start, to_utc
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.quantity import micros_of_decimal
from usagemeter_clickhouse import Client, tables

__all__ = ["as_number", "daily_usage", "minute_usage", "usage_series", "usage_totals"]

#: The slices a read asks for, as (FeatureKey, DimensionKey, DimensionValue) tuples of the sorting key.
_SLICES = "(FeatureKey, DimensionKey, DimensionValue) IN {slices:Array(Tuple(String, String, String))}"

_TOTALS_SQL = f"""
SELECT FeatureKey, DimensionKey, DimensionValue, sum(Quantity) FROM (
    SELECT FeatureKey, DimensionKey, DimensionValue, Quantity FROM {tables.USAGE_DAY}
    WHERE UserId = {{user:String}} AND {_SLICES}
      AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
    UNION ALL
    SELECT FeatureKey, DimensionKey, DimensionValue, Quantity FROM {tables.USAGE_MINUTE}
    WHERE UserId = {{user:String}} AND {_SLICES}
      AND ((Minute >= {{head_start:DateTime('UTC')}} AND Minute < {{head_end:DateTime('UTC')}})
        OR (Minute >= {{tail_start:DateTime('UTC')}} AND Minute < {{tail_end:DateTime('UTC')}}))
)
GROUP BY FeatureKey, DimensionKey, DimensionValue
"""

# Periods are whole UTC days, so the common case reads the day rollup alone.
_WHOLE_DAYS_SQL = f"""
SELECT FeatureKey, DimensionKey, DimensionValue, sum(Quantity) FROM {tables.USAGE_DAY}
WHERE UserId = {{user:String}} AND {_SLICES}
  AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
GROUP BY FeatureKey, DimensionKey, DimensionValue
"""

# Lifetime totals outlive the day rollup's retention: the month rollup keeps them.
_LIFETIME_SQL = f"""
SELECT FeatureKey, DimensionKey, DimensionValue, sum(Quantity) FROM {tables.USAGE_MONTH}
WHERE UserId = {{user:String}} AND {_SLICES}
GROUP BY FeatureKey, DimensionKey, DimensionValue
"""

_DAILY_SQL = f"""
SELECT Day, sum(Quantity) FROM {tables.USAGE_DAY}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}} AND DimensionKey = ''
  AND Day >= {{first_day:Date}} AND Day <= {{last_day:Date}}
GROUP BY Day
ORDER BY Day
"""


# A rolling window's usage minute by minute, to tell when enough of it has left the window.
_MINUTES_SQL = f"""
SELECT FeatureKey, DimensionKey, DimensionValue, Minute, sum(Quantity) AS Total FROM {tables.USAGE_MINUTE}
WHERE UserId = {{user:String}} AND {_SLICES}
  AND Minute >= {{start:DateTime('UTC')}} AND Minute < {{end:DateTime('UTC')}}
GROUP BY FeatureKey, DimensionKey, DimensionValue, Minute
HAVING Total != 0
ORDER BY Minute
"""

_HOURLY_SQL = f"""
SELECT toStartOfHour(Minute) AS Bucket, sum(Quantity) FROM {tables.USAGE_MINUTE}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}} AND DimensionKey = ''
  AND Minute >= {{start:DateTime('UTC')}} AND Minute < {{end:DateTime('UTC')}}
GROUP BY Bucket
"""

_DAY_BUCKETS_SQL = f"""
SELECT Bucket, sum(Quantity) FROM (
    SELECT Day AS Bucket, Quantity FROM {tables.USAGE_DAY}
    WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}} AND DimensionKey = ''
      AND Day >= {{first_day:Date}} AND Day < {{end_day:Date}}
    UNION ALL
    SELECT toDate(Minute) AS Bucket, Quantity FROM {tables.USAGE_MINUTE}
    WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}} AND DimensionKey = ''
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


def usage_totals(client: Client, user_id: str, slices: Sequence[Slice], window: Window) -> dict[Slice, int]:
    """Micro-units per slice of ``user_id`` in ``window`` (to the minute); slices without usage are absent."""
    if not slices:
        return {}
    parameters: dict[str, object] = {
        "user": user_id,
        "slices": [(part.feature_key, part.dimension_key, part.dimension_value) for part in slices],
    }
    if window == LIFETIME:
        sql = _LIFETIME_SQL
    else:
        split = _split(window)
        whole_days = split.head.start == split.head.end and split.tail.start == split.tail.end
        sql = _WHOLE_DAYS_SQL if whole_days else _TOTALS_SQL
        parameters.update(_split_parameters(window))
    rows = client.query(sql, parameters=parameters).result_rows
    return {Slice(key, dimension, value): micros_of_decimal(total) for key, dimension, value, total in rows}


def minute_usage(
    client: Client, user_id: str, slices: Sequence[Slice], window: Window
) -> dict[Slice, list[tuple[datetime, int]]]:
    """Micro-units per UTC minute of each slice in ``window``, oldest first; minutes without usage are absent.

    Bounded by the window: a rolling one is at most 31 days of minutes.
    """
    parameters = {
        "user": user_id,
        "slices": [(part.feature_key, part.dimension_key, part.dimension_value) for part in slices],
        "start": naive_utc(window.start),
        "end": naive_utc(window.end),
    }
    found: dict[Slice, list[tuple[datetime, int]]] = {part: [] for part in slices}
    for key, dimension, value, minute, total in client.query(_MINUTES_SQL, parameters=parameters).result_rows:
        found.setdefault(Slice(key, dimension, value), []).append(
            (minute.replace(tzinfo=UTC), micros_of_decimal(total))
        )
    return found


def usage_series(
    client: Client, user_id: str, feature_key: str, window: Window, interval: Literal["hour", "day"]
) -> dict[datetime, int]:
    """Micro-units of one feature in ``window`` (to the minute) per UTC hour or day, keyed by the bucket's start.

    Buckets without usage are absent; the edge buckets count only their part inside ``window``.
    """
    if interval == "hour":
        parameters: dict[str, object] = {"start": naive_utc(window.start), "end": naive_utc(window.end)}
        rows = client.query(_HOURLY_SQL, parameters={"user": user_id, "feature": feature_key, **parameters})
        return {bucket.replace(tzinfo=UTC): micros_of_decimal(total) for bucket, total in rows.result_rows}
    parameters = {"user": user_id, "feature": feature_key, **_split_parameters(window)}
    rows = client.query(_DAY_BUCKETS_SQL, parameters=parameters)
    return {day_start(day): micros_of_decimal(total) for day, total in rows.result_rows}


def daily_usage(client: Client, user_id: str, feature_key: str, first_day: date, last_day: date) -> dict[date, int]:
    """Micro-units of one feature per UTC day from ``first_day`` to ``last_day`` inclusive (no usage: absent)."""
    parameters = {"user": user_id, "feature": feature_key, "first_day": first_day, "last_day": last_day}
    rows = client.query(_DAILY_SQL, parameters=parameters).result_rows
    return {day: micros_of_decimal(total) for day, total in rows}


def as_number(value: float) -> int | float:
    """``value`` as an int when it is integral, so counts read as counts."""
    return int(value) if float(value).is_integer() else value
