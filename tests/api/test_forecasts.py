"""Forecasts on quota answers: the method on its own, then the REST answers at a fixed clock on the real engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.api_support import NOW, bearer, record_usage
from usagemeter_api.domain.forecast import NO_FORECAST, SAMPLE_SHARE, Forecast, forecast
from usagemeter_api.domain.periods import Window
from usagemeter_api.quantity import MICROS_PER_UNIT

_UNIT = MICROS_PER_UNIT
#: A 30-day window, so a day is a thirtieth of it and its floor (a tenth) three days.
_START = datetime(2026, 11, 1, tzinfo=UTC)
_MONTH = Window(_START, _START + timedelta(days=30))


def _at_day(days: float) -> datetime:
    return _START + timedelta(days=days)


def test_a_steady_rate_projects_linearly_to_the_windows_end_and_stays_under_the_limit():
    assert forecast(10 * _UNIT, 50 * _UNIT, _MONTH, "month", _at_day(10)) == Forecast(30 * _UNIT, None)


def test_a_steady_rate_that_passes_the_limit_says_when_it_reaches_it():
    # 20 in 10 days is 2 a day: the 30 left of 50 last 15 days.
    assert forecast(20 * _UNIT, 50 * _UNIT, _MONTH, "month", _at_day(10)) == Forecast(60 * _UNIT, _at_day(25))


def test_a_projection_exactly_at_the_limit_has_no_exhaustion():
    assert forecast(25 * _UNIT, 50 * _UNIT, _MONTH, "month", _at_day(15)) == Forecast(50 * _UNIT, None)


def test_a_fresh_period_divides_by_a_tenth_of_the_window_not_by_the_minutes_gone():
    now = _START + timedelta(minutes=5)
    ahead = forecast(2 * _UNIT, 50 * _UNIT, _MONTH, "month", now)
    # Divided by the 5 minutes the rate would project 17,280 uses; over three days it is under the limit.
    left = _MONTH.end - now
    assert ahead == Forecast(2 * _UNIT + 2 * _UNIT * (left // timedelta(microseconds=1)) // (3 * 86_400_000_000), None)
    assert ahead.projected_used is not None and ahead.projected_used < 22 * _UNIT


def test_one_early_burst_projects_to_at_most_eleven_times_itself():
    now = _START + timedelta(seconds=1)
    ahead = forecast(40 * _UNIT, 50 * _UNIT, _MONTH, "month", now)
    assert ahead.projected_used is not None
    assert 40 * _UNIT < ahead.projected_used <= (SAMPLE_SHARE + 1) * 40 * _UNIT
    # The 10 left last a quarter of the three days the burst is spread over.
    assert ahead.exhausted_at == now + timedelta(hours=18)


def test_a_late_burst_is_averaged_over_the_window_so_far():
    # 30 of which 25 came today, day 20 of 30: the average holds 1.5 a day, not today's 25.
    assert forecast(30 * _UNIT, 50 * _UNIT, _MONTH, "month", _at_day(20)) == Forecast(45 * _UNIT, None)


def test_an_exceeded_or_used_up_window_is_exhausted_now():
    now = _at_day(10)
    assert forecast(60 * _UNIT, 50 * _UNIT, _MONTH, "month", now) == Forecast(180 * _UNIT, now)
    assert forecast(50 * _UNIT, 50 * _UNIT, _MONTH, "month", now) == Forecast(150 * _UNIT, now)


def test_zero_usage_projects_zero_and_never_exhausts_even_a_zero_allowance():
    assert forecast(0, 50 * _UNIT, _MONTH, "month", _at_day(10)) == Forecast(0, None)
    assert forecast(0, 0, _MONTH, "month", _at_day(10)) == Forecast(0, None)


def test_lifetime_and_rolling_windows_have_no_forecast():
    rolling = Window(_at_day(10) - timedelta(hours=5), _at_day(10) + timedelta(minutes=1))
    assert forecast(900 * _UNIT, 1000 * _UNIT, rolling, "rolling", _at_day(10)) == NO_FORECAST
    lifetime = Window(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    assert forecast(900 * _UNIT, 1000 * _UNIT, lifetime, "lifetime", _at_day(10)) == NO_FORECAST


def test_without_a_limit_usage_is_projected_but_never_exhausted():
    assert forecast(10 * _UNIT, None, _MONTH, "month", _at_day(10)) == Forecast(30 * _UNIT, None)


def test_projections_are_exact_micro_units_and_exhaustion_the_first_microsecond_past_the_limit():
    ahead = forecast(1_000_001, 3 * _UNIT, _MONTH, "month", _at_day(10))
    assert ahead.projected_used == 3_000_003
    assert ahead.exhausted_at is not None
    elapsed_us = 10 * 86_400_000_000
    reached = (ahead.exhausted_at - _at_day(10)) // timedelta(microseconds=1)
    # used + used * t / elapsed reaches 3 units at t, not a microsecond before.
    assert 1_000_001 * (elapsed_us + reached) >= 3 * _UNIT * elapsed_us
    assert 1_000_001 * (elapsed_us + reached - 1) < 3 * _UNIT * elapsed_us


_DAILY_PLANS = """
default_plan = "daily"

[plans.daily]
name = "Daily"
period = "day"
[plans.daily.limits]
chat_messages = "unlimited"
document_export = 100

[plans.daily.features.ai_tokens]
unit = "tokens"
limits = [
  { window = "day", limit = 100 },
  { window = "5h", limit = 1000 },
  { window = "lifetime", limit = 10000 },
]
"""


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_quota_answers_carry_each_limits_forecast_and_the_binding_ones_at_top(make_api, plans_file, clickhouse):
    # NOW is noon: half the day is gone, so a day's projection is twice its usage.
    assert (NOW.hour, NOW.minute) == (12, 0)
    record_usage(
        clickhouse,
        [
            ("ivy", "ai_tokens", NOW - timedelta(hours=1), 60),
            ("ivy", "document_export", NOW - timedelta(hours=3), 30),
            ("ivy", "chat_messages", NOW - timedelta(hours=2), 7.5),
            ("jon", "document_export", NOW - timedelta(hours=11), 120),
        ],
    )
    api = make_api(plans_file=plans_file(_DAILY_PLANS))
    listing = api.get("/api/v1/quotas", headers=bearer("ivy"))
    assert listing.status_code == 200, listing.text
    quotas = {item["feature_key"]: item for item in listing.json()["quotas"]}
    tokens = quotas["ai_tokens"]
    # 60 of 100 by noon heads for 120: the 40 left last 8 hours.
    by_window = {limit["window"]: limit for limit in tokens["limits"]}
    assert (by_window["day"]["projected_used"], by_window["day"]["projected_exhausted_at"]) == (
        120,
        _z(NOW + timedelta(hours=8)),
    )
    for window in ("5h", "lifetime"):
        assert (by_window[window]["projected_used"], by_window[window]["projected_exhausted_at"]) == (None, None)
    assert tokens["binding"]["window"] == "day"
    assert (tokens["projected_used"], tokens["projected_exhausted_at"]) == (120, _z(NOW + timedelta(hours=8)))
    export = quotas["document_export"]
    assert (export["projected_used"], export["projected_exhausted_at"]) == (60, None)
    chat = quotas["chat_messages"]
    assert (chat["limit"], chat["projected_used"], chat["projected_exhausted_at"]) == (None, 15, None)

    one = api.get("/api/v1/quotas/ai_tokens", headers=bearer("ivy")).json()
    assert (one["projected_used"], one["projected_exhausted_at"]) == (120, _z(NOW + timedelta(hours=8)))
    assert [limit["projected_used"] for limit in one["limits"]] == [
        limit["projected_used"] for limit in tokens["limits"]
    ]

    dashboard = api.get("/api/v1/analytics/dashboard-metrics", headers=bearer("ivy")).json()
    assert {item["feature_key"]: item["projected_used"] for item in dashboard["quotas"]} == {
        "ai_tokens": 120,
        "chat_messages": 15,
        "document_export": 60,
    }

    exceeded = api.get("/api/v1/quotas/document_export", headers=bearer("jon")).json()
    assert (exceeded["exceeded"], exceeded["projected_used"], exceeded["projected_exhausted_at"]) == (
        True,
        240,
        _z(NOW),
    )
    unused = api.get("/api/v1/quotas/ai_tokens", headers=bearer("jon")).json()
    assert (unused["projected_used"], unused["projected_exhausted_at"]) == (0, None)
    # The check keeps its answer as it was: forecasts belong to the listings.
    check = api.get("/api/v1/quotas/ai_tokens/check", headers=bearer("ivy")).json()
    assert "projected_used" not in check and all("projected_used" not in limit for limit in check["limits"])
