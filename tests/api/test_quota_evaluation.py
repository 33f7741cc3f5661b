"""The quota evaluation on its own: each limit's figures with grants, the binding limit, and when a window frees up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from usagemeter_api.domain.grants import Grant
from usagemeter_api.domain.periods import LIFETIME, limit_window
from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_api.domain.quota import allows, binding_of, limit_figures
from usagemeter_api.domain.quota_answers import binding_answer
from usagemeter_api.domain.quota_windows import feature_layout, frees_at, rolling_minutes
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.schemas.plans import FeaturePlan, LimitRule, LimitWindow, parse_window

M = 1_000_000
NOW = datetime(2026, 11, 20, 9, 30, 20, tzinfo=UTC)
FEATURE = "ai_tokens"
TOKENS = FeaturePlan.model_validate(
    {
        "unit": "tokens",
        "dimension": "model",
        "limits": [
            {"window": "5h", "limit": 1000},
            {"window": "7d", "limit": 5000},
            {"window": "month", "limit": 200, "dimension_value": "gpt-4o"},
        ],
    }
)
FIVE_HOURS, SEVEN_DAYS, GPT4O_MONTH = TOKENS.limits


def grant(amount: int, dimension_value: str | None = None, *, days: int | None = None, starts: int = -1) -> Grant:
    expires = None if days is None else NOW + timedelta(days=days)
    start = NOW + timedelta(days=starts)
    return Grant("g", "ana", FEATURE, dimension_value, amount * M, start, expires, "test", "ops", start, None, None)


def figures(rule: LimitRule, used: int, grants: tuple[Grant, ...] = ()):
    return limit_figures(rule, FEATURE, limit_window(rule.window, NOW), used * M, grants, 0.8, NOW)


def test_grants_raise_only_the_limits_they_match_while_active():
    grants = (
        grant(100),  # the feature total, no expiry
        grant(40, days=3),  # the feature total, expires in 3 days
        grant(50, "gpt-4o"),  # only gpt-4o's limits
        grant(999, days=-1, starts=-5),  # expired
        grant(999, starts=1),  # not yet in effect
        replace(grant(999), feature_key="other_feature"),
        replace(grant(999), voided_at=NOW - timedelta(minutes=1), voided_by="ops"),  # voided
    )
    total = figures(FIVE_HOURS, 1100, grants)
    assert (total.limit, total.granted, total.available, total.remaining) == (1000 * M, 140 * M, 1140 * M, 40 * M)
    assert total.grant_expires_at == NOW + timedelta(days=3)
    assert (total.exceeded, total.near_limit, total.percent_used) == (False, True, 96.49)
    model = figures(GPT4O_MONTH, 260, grants)
    assert (model.granted, model.remaining, model.exceeded, model.grant_expires_at) == (50 * M, 0, True, None)


def test_exact_thresholds_hold_in_micro_units():
    limit = LimitRule(window=parse_window("day"), limit="0.3")
    at = limit_figures(limit, FEATURE, limit_window(limit.window, NOW), 300_000, (), 0.8, NOW)
    assert (at.remaining, at.exceeded, at.has_access, at.fits(0), at.fits(1)) == (0, False, False, True, False)
    near = limit_figures(limit, FEATURE, limit_window(limit.window, NOW), 240_000, (), 0.8, NOW)
    assert near.near_limit and not limit_figures(limit, FEATURE, near.range, 239_999, (), 0.8, NOW).near_limit


def test_the_binding_limit_is_the_least_remaining_and_ties_go_to_the_earliest_freeing():
    rolling, weekly = figures(FIVE_HOURS, 900), figures(SEVEN_DAYS, 4950)
    assert binding_of([rolling, weekly]) is weekly
    day = figures(LimitRule(window=parse_window("day"), limit=1000), 1000)
    month = figures(LimitRule(window=parse_window("month"), limit=50), 50)
    lifetime = figures(LimitRule(window=parse_window("lifetime"), limit=10), 10)
    assert binding_of([lifetime, month, day]) is day  # all at 0 remaining; the day ends first
    assert binding_of([lifetime, month]) is month
    assert binding_of([]) is None


def test_a_hard_plan_allows_only_what_fits_every_limit():
    limits = [figures(FIVE_HOURS, 990), figures(SEVEN_DAYS, 100)]
    assert allows(limits, 10 * M, "hard") and not allows(limits, 10 * M + 1, "hard")
    assert allows(limits, 10**6 * M, "soft")


def test_calendar_windows_free_at_their_end_lifetime_never():
    month = figures(GPT4O_MONTH, 200)
    assert frees_at(month, 1 * M, None) == datetime(2026, 12, 1, tzinfo=UTC)
    assert frees_at(month, 201 * M, None) is None  # never fits the allowance
    lifetime = figures(LimitRule(window=parse_window("lifetime"), limit=10), 10)
    assert lifetime.range == LIFETIME and frees_at(lifetime, 1, None) is None


def test_a_rolling_window_frees_when_enough_usage_has_left_it():
    window = limit_window(FIVE_HOURS.window, NOW)
    assert window.start == datetime(2026, 11, 20, 4, 31, tzinfo=UTC)
    minutes = [
        (window.start, 300 * M),
        (window.start + timedelta(minutes=10), 200 * M),
        (NOW.replace(second=0), 500 * M),
    ]
    full = figures(FIVE_HOURS, 1000)
    # 250 more needs the 04:31 minute (300) gone: it leaves the 5h window at 09:31.
    assert frees_at(full, 250 * M, minutes) == datetime(2026, 11, 20, 9, 31, tzinfo=UTC)
    # 400 more needs 04:41 gone as well.
    assert frees_at(full, 400 * M, minutes) == datetime(2026, 11, 20, 9, 41, tzinfo=UTC)
    assert frees_at(full, 1001 * M, minutes) is None
    # When it fits already (a listing asks with 0), the moment is when the oldest usage leaves.
    assert frees_at(figures(FIVE_HOURS, 600), 0, minutes[:1] + minutes[2:]) == datetime(2026, 11, 20, 9, 31, tzinfo=UTC)
    # Usage newer than the minutes read: everything inside has left once the current minute has.
    assert frees_at(full, 600 * M, minutes[:1]) == NOW.replace(second=0) + timedelta(hours=5)
    assert frees_at(full, 1 * M, None) is None  # not read: not known


def test_the_binding_answer_notes_a_grant_that_expires_before_the_limit_frees_up():
    soon = (grant(100, days=2),)
    month = figures(LimitRule(window=parse_window("month"), limit=100), 150, soon)
    assert binding_answer(month).grant_expires_at == NOW + timedelta(days=2)
    later = (grant(100, days=30),)
    assert (
        binding_answer(figures(LimitRule(window=parse_window("month"), limit=100), 150, later)).grant_expires_at is None
    )


def test_a_dimension_value_counts_against_the_total_limits_and_its_own():
    layout = feature_layout(FEATURE, TOKENS, LimitWindow("month"))
    assert layout is feature_layout(FEATURE, TOKENS, LimitWindow("month"))  # worked out once per plan object
    gpt = layout.matching("gpt-4o")
    assert [slot.rule for slot in gpt.slots] == [FIVE_HOURS, SEVEN_DAYS, GPT4O_MONTH]
    assert [slot.slice for slot in gpt.slots][2] == Slice(FEATURE, "model", "gpt-4o")
    assert [(read.window.label, read.slices) for read in gpt.reads] == [
        ("5h", (Slice.total(FEATURE),)),
        ("7d", (Slice.total(FEATURE),)),
        ("month", (Slice(FEATURE, "model", "gpt-4o"),)),
    ]
    # A value the plan does not limit has the feature-total limits only.
    assert [slot.rule for slot in layout.matching("mini").slots] == [FIVE_HOURS, SEVEN_DAYS]
    assert [slot.rule for slot in layout.own("gpt-4o").slots] == [GPT4O_MONTH]
    unlimited = feature_layout("chat", FeaturePlan(), LimitWindow("week"))
    assert unlimited.matching(None).slots == ()
    assert [read.window.label for read in unlimited.matching(None).reads] == ["week"]


def test_the_rolling_windows_the_plans_use_are_known_for_the_in_memory_view():
    catalog = PlanCatalog(plans={"a": Plan(name="A", features={FEATURE: TOKENS}), "b": Plan(name="B")})
    assert rolling_minutes(catalog.plans.values()) == {300, 7 * 24 * 60}


def test_an_empty_rolling_window_has_nothing_to_free():
    assert frees_at(figures(FIVE_HOURS, 0), 0, []) is None
