"""The usage queries on the rollups, including ranges that cut days and minutes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from tests.api.api_support import NOW, bearer, record_usage
from usagemeter_api.domain.periods import Window, period_window
from usagemeter_api.domain.usage.queries import as_number, daily_usage, usage_totals
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import migrate, tables

DAY = NOW.replace(hour=0)
F, G, H = Slice.total("f"), Slice.total("g"), Slice.total("h")
M = 1_000_000  # micro-units per unit


def _points():
    return [
        ("u", "f", DAY - timedelta(days=1, minutes=-5), 1),  # yesterday 00:05
        ("u", "f", DAY - timedelta(minutes=1), 2),  # yesterday 23:59
        ("u", "f", DAY, 4),  # today 00:00
        ("u", "f", DAY + timedelta(hours=6, seconds=59), 8),  # today 06:00:59
        ("u", "f", DAY + timedelta(hours=6, minutes=1), 16),  # today 06:01
        ("u", "f", DAY + timedelta(days=1), 256),  # tomorrow 00:00
        ("u", "f", DAY + timedelta(days=1, minutes=30), 32),  # tomorrow 00:30
        ("u", "g", DAY, 64),
        ("v", "f", DAY, 128),
    ]


def test_ranges_are_exact_to_the_minute_across_day_edges(clickhouse):
    record_usage(clickhouse, _points())
    cases = [
        (Window(DAY - timedelta(days=1), DAY + timedelta(days=2)), 319),  # whole days only
        (Window(DAY - timedelta(minutes=1), DAY + timedelta(hours=6, minutes=1)), 14),  # partial both ends
        (Window(DAY + timedelta(hours=6), DAY + timedelta(hours=6, minutes=1)), 8),  # inside one day
        (Window(DAY - timedelta(days=1, minutes=-6), DAY + timedelta(days=1, minutes=30)), 286),  # full day inside
        (Window(DAY - timedelta(days=1, minutes=-5), DAY + timedelta(days=1, minutes=31)), 319),
        (Window(DAY, DAY), 0),
    ]
    for window, expected in cases:
        assert usage_totals(clickhouse, "u", [F], window).get(F, 0) == expected * M, window


def test_totals_are_per_feature_and_per_user(clickhouse):
    record_usage(clickhouse, _points())
    window = Window(DAY, DAY + timedelta(days=1))
    assert usage_totals(clickhouse, "u", [F, G, H], window) == {F: 28 * M, G: 64 * M}
    assert usage_totals(clickhouse, "v", [F], window) == {F: 128 * M}
    assert usage_totals(clickhouse, "u", [], window) == {}


def test_usage_split_across_services_and_inserts_is_summed_before_merges(clickhouse):
    for service in ("web", "worker"):
        for _ in range(3):
            record_usage(clickhouse, [("u", "f", NOW, 1), ("u", "f", NOW + timedelta(seconds=1), 1)], service=service)
    window = period_window("month", NOW)
    assert usage_totals(clickhouse, "u", [F], window) == {F: 12 * M}
    assert daily_usage(clickhouse, "u", "f", NOW.date(), NOW.date()) == {NOW.date(): 12 * M}


def test_daily_usage_bounds_are_inclusive(clickhouse):
    record_usage(clickhouse, _points())
    days = daily_usage(clickhouse, "u", "f", DAY.date(), DAY.date() + timedelta(days=1))
    assert days == {DAY.date(): 28 * M, DAY.date() + timedelta(days=1): 288 * M}


def test_periods_are_utc_calendar_units():
    moment = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)  # a Thursday in a leap February
    assert period_window("day", moment) == Window(datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert period_window("week", moment) == Window(datetime(2024, 2, 26, tzinfo=UTC), datetime(2024, 3, 4, tzinfo=UTC))
    assert period_window("month", moment) == Window(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    december = period_window("month", datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert december.end == datetime(2026, 1, 1, tzinfo=UTC)
    tokyo = datetime(2024, 3, 1, 8, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert period_window("day", tokyo).start == datetime(2024, 3, 1, tzinfo=UTC)


def test_as_number_keeps_counts_integral():
    assert as_number(3.0) == 3 and isinstance(as_number(3.0), int)
    assert as_number(2.5) == 2.5


def test_concurrent_requests_share_the_client_pool(make_api, clickhouse):
    api = make_api(clickhouse_pool_size=2)
    record_usage(clickhouse, [(f"user-{n}", "chat_messages", NOW, n) for n in range(12)])

    def used(n: int) -> int:
        response = api.get("/api/v1/quotas/chat_messages", headers=bearer(f"user-{n}"))
        assert response.status_code == 200, response.text
        return int(response.json()["used"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(used, list(range(12)) * 3))
    assert results == list(range(12)) * 3


def test_the_test_database_copy_is_fully_migrated(clickhouse):
    assert migrate(clickhouse) == []
    names = {
        row[0]
        for row in clickhouse.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    }
    assert {tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.PLANS} <= names
    record_usage(clickhouse, [("u", "f", NOW, 3)])
    assert usage_totals(clickhouse, "u", [F], period_window("month", NOW)) == {F: 3 * M}
