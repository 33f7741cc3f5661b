"""The clock: the current UTC time, and UTC moments as ClickHouse's ``DateTime('UTC')`` parameters take them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["epoch_ms", "naive_utc", "read_utc", "system_clock"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def naive_utc(moment: datetime) -> datetime:
    """``moment``'s UTC wall-clock time without a zone.

    Query placeholders are typed ``DateTime('UTC')``, so the value is read as UTC; an aware
    datetime would be converted by the client with the machine's zone instead.
    """
    return moment.astimezone(UTC).replace(tzinfo=None)


def epoch_ms(moment: datetime) -> int:
    """``moment`` (aware) as whole milliseconds since the epoch: a ``DateTime64(3)`` parameter without loss."""
    return (moment - _EPOCH) // _MILLISECOND


def read_utc(value: datetime) -> datetime:
    """A moment read from a ``DateTime64(3, 'UTC')`` column (naive UTC wall-clock time) as an aware datetime."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
