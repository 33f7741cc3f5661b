"""Which thresholds a limit's figures cross, and the events' stable ids and bodies (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.quota import LimitFigures
from usagemeter_api.domain.webhooks.events import crossings, projection, reset_event, threshold_event
from usagemeter_api.schemas.plans import DEFAULT_THRESHOLDS, FeaturePlan, LimitRule, LimitWindow, Threshold

MICROS = 1_000_000
NOW = datetime(2026, 12, 14, 16, 2, 11, tzinfo=UTC)
DECEMBER = Window(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
JANUARY = Window(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


def figures(
    used: float, limit: float = 50, granted: float = 0, window: Window = DECEMBER, **rule: object
) -> LimitFigures:
    limit_rule = LimitRule(window=rule.pop("kind", LimitWindow("month")), limit=limit, **rule)  # type: ignore[arg-type]
    return LimitFigures(limit_rule, window, round(used * MICROS), round(limit * MICROS), round(granted * MICROS), 0.8)


def kinds(found: list) -> list[tuple[str, float | None]]:
    return [(crossing.type, crossing.threshold_percent) for crossing in found]


def test_the_default_thresholds_are_reached_at_exactly_80_and_100_percent():
    assert kinds(crossings(figures(39.999999), DEFAULT_THRESHOLDS)) == []
    # 80 % of 50 is 40 exactly: no floating-point shortfall keeps it from counting.
    assert kinds(crossings(figures(40), DEFAULT_THRESHOLDS)) == [("quota.threshold_reached", 80)]
    assert kinds(crossings(figures(50), DEFAULT_THRESHOLDS)) == [
        ("quota.threshold_reached", 80),
        ("quota.exceeded", 100),
    ]


def test_absolute_and_uneven_thresholds():
    thresholds = (Threshold(amount=30), Threshold(percent=33.3), Threshold(percent=150))
    found = crossings(figures(33.3, limit=100), thresholds)
    assert kinds(found) == [("quota.threshold_reached", 30.0), ("quota.threshold_reached", 33.3)]
    assert kinds(crossings(figures(150, limit=100), thresholds))[-1] == ("quota.threshold_reached", 150)


def test_no_use_crosses_nothing_even_against_a_zero_allowance():
    assert crossings(figures(0, limit=0), DEFAULT_THRESHOLDS) == []
    assert kinds(crossings(figures(1, limit=0), DEFAULT_THRESHOLDS)) == [
        ("quota.threshold_reached", 80),
        ("quota.exceeded", 100),
    ]


def test_grants_count_in_the_level_and_their_exhaustion_is_announced():
    # 50 plus a grant of 50: 80 % is 80 now, and the grants are used up at 100.
    assert kinds(crossings(figures(79.9, granted=50), DEFAULT_THRESHOLDS)) == []
    assert kinds(crossings(figures(80, granted=50), DEFAULT_THRESHOLDS)) == [("quota.threshold_reached", 80)]
    assert kinds(crossings(figures(100, granted=50), DEFAULT_THRESHOLDS)) == [
        ("quota.threshold_reached", 80),
        ("quota.exceeded", 100),
        ("grant.exhausted", 100.0),
    ]


def test_an_event_id_names_the_user_feature_dimension_window_period_and_threshold():
    reached, exceeded = crossings(figures(50), DEFAULT_THRESHOLDS)
    first = threshold_event(reached, "alice", "exports", NOW)
    assert first.event_id == threshold_event(reached, "alice", "exports", NOW + timedelta(hours=3)).event_id
    others = {
        threshold_event(exceeded, "alice", "exports", NOW).event_id,
        threshold_event(reached, "bob", "exports", NOW).event_id,
        threshold_event(reached, "alice", "chat", NOW).event_id,
        threshold_event(
            crossings(figures(50, window=JANUARY), DEFAULT_THRESHOLDS)[0], "alice", "exports", NOW
        ).event_id,
        threshold_event(
            crossings(figures(50, dimension_value="gpt-4o"), DEFAULT_THRESHOLDS)[0], "alice", "exports", NOW
        ).event_id,
        threshold_event(
            crossings(figures(50, kind=LimitWindow("week")), DEFAULT_THRESHOLDS)[0], "alice", "exports", NOW
        ).event_id,
    }
    assert first.event_id not in others and len(others) == 6
    assert first.event_id.startswith("evt_") and len(first.event_id) == 36


def test_the_body_carries_what_the_contract_names():
    reached = crossings(figures(42.5, granted=0, dimension_value="gpt-4o"), DEFAULT_THRESHOLDS)[0]
    event = threshold_event(reached, "alice", "ai_tokens", NOW)
    assert event.body == {
        "type": "quota.threshold_reached",
        "user_id": "alice",
        "feature_key": "ai_tokens",
        "dimension_value": "gpt-4o",
        "threshold_percent": 80,
        "used": 42.5,
        "limit": 50,
        "granted": 0,
        "window": "month",
        "period_start": "2026-12-01T00:00:00Z",
        "period_end": "2027-01-01T00:00:00Z",
        "occurred_at": "2026-12-14T16:02:11Z",
    }
    assert event.payload() == event.payload() and " " not in event.payload()


def test_a_reset_tells_the_new_period_and_is_about_the_one_that_ended():
    event = reset_event(figures(3, window=JANUARY), "alice", "exports", DECEMBER.start, NOW)
    assert event.type == "quota.reset" and event.body["period_start"] == "2027-01-01T00:00:00Z"
    assert (event.period_start, event.period_end) == (DECEMBER.start, JANUARY.start)
    again = reset_event(figures(9, window=JANUARY), "alice", "exports", DECEMBER.start, NOW + timedelta(minutes=5))
    assert again.event_id == event.event_id


@pytest.mark.parametrize(
    "thresholds",
    [
        [{"percent": 80, "amount": 10}],
        [{}],
        [{"percent": 0}],
        [{"percent": 1001}],
        [{"amount": -1}],
        [{"percent": 1}] * 11,
    ],
)
def test_a_plan_refuses_thresholds_that_are_not_one_percent_or_one_amount(thresholds):
    with pytest.raises(ValidationError):
        FeaturePlan.model_validate({"limits": [{"window": "month", "limit": 10}], "thresholds": thresholds})


def test_a_plan_without_thresholds_reads_and_writes_as_before():
    plan = FeaturePlan.model_validate({"limits": [{"window": "month", "limit": 10}]})
    assert "thresholds" not in plan.model_dump(mode="json") and plan.threshold_levels() == DEFAULT_THRESHOLDS
    custom = FeaturePlan.model_validate({"thresholds": [{"percent": 50}, {"amount": 9}]})
    assert custom.model_dump(mode="json")["thresholds"] == [{"percent": 50.0}, {"amount": 9}]


def test_a_projection_past_the_limit_is_announced_before_it_is_reached():
    # 10 days of December gone and 20 of 50 used, 2 a day: 62 by the month's end, 50 reached on the 26th.
    tenth = DECEMBER.start + timedelta(days=10)
    ahead = projection(figures(20), tenth)
    assert ahead is not None and ahead.type == "quota.projected_to_exceed"
    event = threshold_event(ahead, "alice", "exports", tenth)
    assert event.body["projected_used"] == 62 and event.body["projected_exhausted_at"] == "2026-12-26T00:00:00Z"
    assert event.event_id == threshold_event(ahead, "alice", "exports", tenth + timedelta(days=1)).event_id
    assert projection(figures(10), tenth) is None  # 31 by the end: under the limit
    assert projection(figures(50), tenth) is None  # reached: quota.exceeded says so
    assert projection(figures(45, kind=LimitWindow("rolling", 300)), tenth) is None  # a rolling window has no end
