"""Upgrading a database of the previous release: every total it held stays exact, and new usage adds exactly."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.clickhouse.upgrade import (
    expected_totals,
    ingest_minutes,
    migrate_previous_release,
    new_totals,
    old_totals,
    record_correction,
    usage_points,
    write_as_the_collector,
)
from usagemeter_clickhouse import Client, SchemaOptions, available_migrations, connect, migrate, tables

TODAY = SchemaOptions(dimension_attributes=("model",))


@pytest.fixture
def previous_release(chdb_url: str, database: str) -> Iterator[Client]:
    """A database migrated and filled by the previous release."""
    client = connect(chdb_url, database, create_database=True)
    migrate_previous_release(client, SchemaOptions())
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


def assert_upgraded_exactly(client: Client, before: dict[str, dict]) -> None:  # type: ignore[type-arg]
    """Every user's feature totals per minute, day, month and lifetime as before, and the last 32 days ingested."""
    assert new_totals(client) == before
    assert client.query(f"SELECT count() FROM {tables.USAGE_DAY} WHERE DimensionKey != ''").result_rows == [(0,)]
    newest = max(minute for _, _, minute in before["minute"])
    recent = {key: total for key, total in before["minute"].items() if key[2] >= newest - timedelta(days=32)}
    assert ingest_minutes(client) == recent
    month_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=31)
    assert any(minute < month_ago for _, _, minute in recent), "the ingest rollup reaches back 32 days"


def assert_new_usage_adds_exactly(client: Client, before: dict[str, dict]) -> None:  # type: ignore[type-arg]
    now = time.time_ns()
    write_as_the_collector(client, [("user-0", "chat", now, 0.1), ("user-0", "chat", now, 0.2)], model="gpt-4o")
    record_correction(client, "user-1", "ai_tokens", "-0.7")
    record_correction(client, "user-2", "chat", "1.5", ("model", "mini"))
    after = new_totals(client)
    changes = {
        ("user-0", "chat"): Decimal("0.3"),
        ("user-1", "ai_tokens"): Decimal("-0.7"),
        ("user-2", "chat"): Decimal("1.5"),
    }
    for (user, feature), change in changes.items():
        key = (user, feature, None)
        assert after["lifetime"][key] == before["lifetime"].get(key, 0) + change
        today = (user, feature, datetime.now(UTC).date())
        assert after["day"][today] == before["day"].get(today, 0) + change
    slices = dict(
        client.query(
            f"SELECT DimensionValue, sum(Quantity) FROM {tables.USAGE_MONTH} WHERE DimensionKey = 'model' GROUP BY 1"
        ).result_rows
    )
    assert slices == {"gpt-4o": Decimal("0.3"), "mini": Decimal("1.5")}


def test_an_upgraded_database_keeps_every_total_exactly_and_adds_new_usage_exactly(previous_release: Client):
    points = usage_points()
    write_as_the_collector(previous_release, points)
    before = old_totals(previous_release)
    assert before == expected_totals(points), "the previous release counted every point"
    applied = migrate(previous_release, TODAY)
    assert [m.version for m in applied] == [m.version for m in available_migrations() if m.version > 10]
    assert_upgraded_exactly(previous_release, before)
    assert_new_usage_adds_exactly(previous_release, before)


def _crash_points() -> list[int]:
    """The first statement, the first dropped view, and every copy and every view of the new rollups: each step
    after which stopping leaves a different state to run again from (each case builds a database of its own)."""
    statements = [s.lstrip() for s in next(m for m in available_migrations() if m.version == 11).statements(TODAY)]
    first_drop = next(i for i, statement in enumerate(statements) if statement.startswith("DROP VIEW"))
    steps = [i for i, statement in enumerate(statements) if statement.startswith(("INSERT", "CREATE MATERIALIZED"))]
    return sorted({0, first_drop, *steps})


@pytest.mark.parametrize("crash_after", _crash_points())
def test_the_upgrade_run_again_after_a_crash_at_any_statement_counts_everything_once(
    previous_release: Client, crash_after: int
):
    points = usage_points(users=2, days=35, per_day=1)
    write_as_the_collector(previous_release, points)
    before = old_totals(previous_release)
    upgrade = next(m for m in available_migrations() if m.version == 11)
    for statement in upgrade.statements(TODAY, previous_release.database or ""):
        previous_release.command(statement)
        if statement == upgrade.statements(TODAY, previous_release.database or "")[crash_after]:
            break
    migrate(previous_release, TODAY)
    assert_upgraded_exactly(previous_release, before)


@pytest.mark.parametrize("table", [tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST])
def test_a_copy_that_crashed_after_committing_some_of_its_parts_adds_only_the_rest_when_run_again(
    previous_release: Client, table: str
):
    points = usage_points(users=2, days=40, per_day=1)
    write_as_the_collector(previous_release, points)
    before = old_totals(previous_release)
    upgrade = next(m for m in available_migrations() if m.version == 11)
    statements = upgrade.statements(TODAY, previous_release.database or "")
    copy = next(s for s in statements if s.startswith(f"INSERT INTO {table}\n"))
    for statement in statements[: statements.index(copy)]:
        previous_release.command(statement)
    # What the crashed run committed: the parts of the copy's first block in its oldest partitions.
    oldest = min(day for _, _, day in before["day"])
    value = oldest.year if table == tables.USAGE_MONTH else int(f"{oldest:%Y%m}")
    partition = f"AND {_partition_of(copy)} = {value}"
    partial = re.sub(r"\n(\s*)GROUP BY", lambda m: f" {partition}\n{m[1]}GROUP BY", copy, count=1)
    previous_release.command(partial)
    assert previous_release.query(f"SELECT count() FROM {table}").result_rows[0][0] > 0
    migrate(previous_release, TODAY)
    assert_upgraded_exactly(previous_release, before)


def _partition_of(copy: str) -> str:
    """The expression picking the copied rows of whole partitions: per month, or per year for the month rollup."""
    if copy.startswith(f"INSERT INTO {tables.USAGE_MONTH}\n"):
        return "toYear(Day)"
    return "toYYYYMM(toDate(Day))" if "FROM feature_usage_day" in copy else "toYYYYMM(toDate(Minute))"
