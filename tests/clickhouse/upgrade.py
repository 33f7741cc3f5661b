"""A database as the previous release (migrations up to 0010) left it, with usage in its rollups, and its totals.

The previous release rolled ``feature.usage`` up into ``feature_usage_minute`` / ``_day`` as Float64
``Uses`` and set their TTLs after migrating; the usage here is written into the raw sums table
the way the collector writes it, over the last 40 days, for several users and features, with
small and large integer counts.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from usagemeter_clickhouse import Client, SchemaOptions, apply_migration, available_migrations, tables
from usagemeter_clickhouse._migrate import ledger_statement

#: The last migration of the previous release.
PREVIOUS_RELEASE = 10
#: The previous release's retention step: rollup tables with their TTL column.
_PREVIOUS_ROLLUP_TTL = {"feature_usage_minute": "Minute", "feature_usage_day": "Day", tables.CONVERSIONS_DAY: "Day"}
_COLUMNS = ["ServiceName", "MetricName", "Attributes", "TimeUnix", "Value", "AggregationTemporality", "IsMonotonic"]
#: Counts cycled through; the large one keeps every Float64 sum below 2^53, where the old rollups were exact.
_COUNTS = (1, 7, 250, 123_456_789_012_345, 3)

Key = tuple[str, str, object]


def migrate_previous_release(client: Client, options: SchemaOptions) -> None:
    """Migrations up to 0010 and the previous release's TTL step, on the client's host."""
    client.command(ledger_statement(options))
    for migration in available_migrations():
        if migration.version <= PREVIOUS_RELEASE:
            apply_migration(client, migration, options)
    groups = ((tables.RAW_TTL, options.raw_retention_days), (_PREVIOUS_ROLLUP_TTL, options.rollup_retention_days))
    for table_ttls, days in groups:
        for table, column in table_ttls.items():
            client.command(
                f"ALTER TABLE {table}{options.local_suffix} MODIFY TTL {column} + INTERVAL {days} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )


def usage_points(users: int = 5, days: int = 40, per_day: int = 3) -> list[tuple[str, str, int, int]]:
    """(user, feature, time in ns, count) over the last ``days`` days, the newest a few minutes ago."""
    now = (time.time_ns() // 10**9 - 300) * 10**9
    points = []
    for n in range(users * days * per_day * 2):
        user, feature = f"user-{n % users}", ("chat", "ai_tokens")[n // users % 2]
        ago = (n * 7919 % (days * 24 * 60)) * 60 * 10**9 + n % 60 * 10**9
        points.append((user, feature, now - ago, _COUNTS[n % len(_COUNTS)]))
    return points


def write_as_the_collector(client: Client, points: list[tuple[str, str, int, float]], **extra: str) -> None:
    """Delta ``feature.usage`` rows in the raw sums table (the public one: Distributed on a cluster)."""
    rows = [
        ["backend", tables.USAGE_METRIC, {tables.USER_ATTRIBUTE: u, tables.FEATURE_ATTRIBUTE: f} | extra, t, v, 1, True]
        for u, f, t, v in points
    ]
    client.insert(tables.METRICS_SUM, rows, column_names=_COLUMNS)


def expected_totals(points: list[tuple[str, str, int, int]]) -> dict[str, dict[Key, int]]:
    """Per user and feature: the totals per minute, day, month and lifetime of ``points``."""
    found: dict[str, dict[Key, int]] = {name: defaultdict(int) for name in ("minute", "day", "month", "lifetime")}
    for user, feature, at, count in points:
        moment = datetime.fromtimestamp(at // 10**9, UTC)
        found["minute"][(user, feature, moment.replace(second=0, tzinfo=None))] += count
        found["day"][(user, feature, moment.date())] += count
        found["month"][(user, feature, date(moment.year, moment.month, 1))] += count
        found["lifetime"][(user, feature, None)] += count
    return {name: dict(totals) for name, totals in found.items()}


def old_totals(client: Client) -> dict[str, dict[Key, Any]]:
    """The previous release's rollups, per minute, day, month and lifetime (their Float64 sums as integers)."""
    day = _read(client, "SELECT UserId, FeatureKey, Day, sum(Uses) FROM feature_usage_day GROUP BY 1, 2, 3")
    return {
        "minute": _read(
            client, "SELECT UserId, FeatureKey, Minute, sum(Uses) FROM feature_usage_minute GROUP BY 1, 2, 3"
        ),
        "day": day,
        "month": _regroup(day, lambda d: date(d.year, d.month, 1)),
        "lifetime": _regroup(day, lambda d: None),
    }


def new_totals(client: Client) -> dict[str, dict[Key, Any]]:
    """Today's rollups' feature totals, per minute, day, month and lifetime."""
    total = "sum(Quantity) FROM {} WHERE DimensionKey = '' GROUP BY 1, 2, 3"
    return {
        "minute": _read(client, f"SELECT UserId, FeatureKey, Minute, {total.format(tables.USAGE_MINUTE)}"),
        "day": _read(client, f"SELECT UserId, FeatureKey, Day, {total.format(tables.USAGE_DAY)}"),
        "month": _read(client, f"SELECT UserId, FeatureKey, Month, {total.format(tables.USAGE_MONTH)}"),
        "lifetime": _read(client, f"SELECT UserId, FeatureKey, NULL, {total.format(tables.USAGE_MONTH)}"),
    }


def ingest_minutes(client: Client) -> dict[Key, Any]:
    """The ingest rollup's feature totals per user, feature and event minute."""
    query = "SELECT UserId, FeatureKey, Minute, sum(Quantity) FROM {} WHERE DimensionKey = '' GROUP BY 1, 2, 3"
    return _read(client, query.format(tables.USAGE_INGEST))


def record_correction(
    client: Client, user: str, feature: str, amount: str, dimension: tuple[str, str] = ("", "")
) -> None:
    """A correction as the API records it, counting now."""
    now = datetime.now(UTC)
    client.insert(
        tables.USAGE_CORRECTIONS,
        [[uuid.uuid4(), user, feature, *dimension, now, Decimal(amount), "upgrade test", "operator", now]],
        column_names=[
            "CorrectionId",
            "UserId",
            "FeatureKey",
            "DimensionKey",
            "DimensionValue",
            "OccurredAt",
            "Quantity",
            "Reason",
            "RecordedBy",
            "RecordedAt",
        ],
    )


def _read(client: Client, query: str) -> dict[Key, Any]:
    rows = client.query(query).result_rows
    return {(user, feature, _plain(at)): _number(total) for user, feature, at, total in rows}


def _plain(at: object) -> object:
    return at.replace(tzinfo=None) if isinstance(at, datetime) else at


def _number(total: object) -> object:
    if isinstance(total, float):
        assert total == int(total), f"the previous release summed a whole count to {total!r}"
        return int(total)
    return total


def _regroup(day: dict[Key, Any], period: Callable[[date], object]) -> dict[Key, int]:
    grouped: dict[Key, int] = defaultdict(int)
    for (user, feature, at), total in day.items():
        grouped[(user, feature, period(at))] += total
    return dict(grouped)
