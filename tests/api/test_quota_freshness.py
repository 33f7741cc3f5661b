"""How fresh quota figures are: as_of and stale on every answer, held totals, and the staleness bound's setting."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.api_support import NOW, SECRET, bearer, record_usage
from tests.api.conftest import AppFactory
from usagemeter_api import SettingsError, load_settings
from usagemeter_api.domain.periods import Window, period_window
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.usage import cache as usage_cache
from usagemeter_api.domain.usage.cache import UsageCache
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import Client

FEATURE = "ai_content_generation"
WINDOW = period_window("month", NOW)
TOTAL, CHAT, EXPORT = (Slice.total(key) for key in (FEATURE, "chat_messages", "document_export"))


def test_staleness_bound_comes_from_the_environment_and_a_negative_one_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USAGEMETER_JWT_SECRET", SECRET)
    monkeypatch.delenv("USAGEMETER_QUOTA_MAX_STALENESS_SECONDS", raising=False)
    assert load_settings().quota_max_staleness_seconds == 300
    monkeypatch.setenv("USAGEMETER_QUOTA_MAX_STALENESS_SECONDS", "0")
    assert load_settings().quota_max_staleness_seconds == 0
    monkeypatch.setenv("USAGEMETER_QUOTA_MAX_STALENESS_SECONDS", "-1")
    with pytest.raises(SettingsError, match="USAGEMETER_QUOTA_MAX_STALENESS_SECONDS"):
        load_settings()


def test_figures_are_stale_when_behind_or_older_than_their_source_keeps_them() -> None:
    read = Freshness.now()
    assert not read.stale
    assert read.falling_behind().stale
    old = Freshness(datetime.now(UTC) - timedelta(seconds=10), time.monotonic() - 10, fresh_for=5)
    assert old.stale and not old.behind
    assert not Freshness(old.as_of, old.known_at, fresh_for=60).stale
    combined = read.oldest(old.falling_behind())
    assert (combined.as_of, combined.behind) == (old.as_of, True)


def test_quota_answers_say_their_figures_were_read_just_now(api_with_usage: AppFactory) -> None:
    before = datetime.now(UTC)
    paths = ("/api/v1/quotas", f"/api/v1/quotas/{FEATURE}", f"/api/v1/quotas/{FEATURE}/check")
    bodies = [api_with_usage.get(path, headers=bearer("ana")).json() for path in paths]
    after = datetime.now(UTC)
    for body in bodies:
        assert body["stale"] is False
        assert before <= datetime.fromisoformat(body["as_of"]) <= after
        assert body["as_of"].endswith("Z")


@pytest.fixture
def api_with_usage(make_api: AppFactory, clickhouse: Client) -> AppFactory:
    record_usage(clickhouse, [("ana", FEATURE, NOW, 3)])
    return make_api()


def test_held_totals_are_marked_behind_and_a_user_never_read_is_not_held(clickhouse: Client) -> None:
    record_usage(clickhouse, [("ana", FEATURE, NOW, 3)])
    cache = UsageCache(ttl_seconds=0, hold_seconds=300)
    totals, freshness = cache.read(clickhouse, "ana", [TOTAL, CHAT], WINDOW)
    assert totals == [3_000_000, 0] and not freshness.stale
    assert cache.recent("ana", [TOTAL], WINDOW) is None  # nothing is reused without a ttl
    held = cache.held("ana", [TOTAL], WINDOW)
    assert held is not None
    assert held[0] == [3_000_000] and held[1].stale and held[1].as_of == freshness.as_of
    assert cache.held("ben", [TOTAL], WINDOW) is None
    assert cache.held("ana", [EXPORT], WINDOW) is None
    assert cache.held("ana", [TOTAL], period_window("day", NOW)) is None


def test_held_totals_stay_bounded_under_many_users(clickhouse: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_cache, "_SWEEP_AT", 8)
    cache = UsageCache(ttl_seconds=0, hold_seconds=300)
    for user in range(40):
        cache.read(clickhouse, f"user-{user}", [TOTAL], WINDOW)
        assert len(cache) <= 8
    assert cache.held("user-39", [TOTAL], WINDOW) is not None
    assert cache.held("user-0", [TOTAL], WINDOW) is None


def test_rolling_windows_usage_per_minute_is_kept_for_a_bounded_number_of_reads(
    clickhouse: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_cache, "_MINUTES_MAX", 4)
    record_usage(clickhouse, [("ana", FEATURE, NOW, 3)])
    cache = UsageCache(ttl_seconds=30)
    window = Window(NOW - timedelta(hours=5), NOW + timedelta(minutes=1))
    assert cache.minutes(clickhouse, "ana", [TOTAL], window) == {TOTAL: [(NOW, 3_000_000)]}
    for user in range(20):
        cache.minutes(clickhouse, f"user-{user}", [TOTAL], window)
        assert cache.minutes_held <= 4
