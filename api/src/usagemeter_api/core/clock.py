"""The clock: the current UTC time, and UTC moments as ClickHouse's ``DateTime('UTC')`` parameters take them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["naive_utc", "system_clock"]


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def naive_utc(moment: datetime) -> datetime:
    """``moment``'s UTC wall-clock time without a zone.

    Query placeholders are typed ``DateTime('UTC')``, so the value is read as UTC; an aware
    datetime would be converted by the client with the machine's zone instead.
    """
    return moment.astimezone(UTC).replace(tzinfo=None)
