"""`usagemeter up --demo` puts its users on their plans, and its worker fails rarely unless asked to."""

from __future__ import annotations

import logging
from itertools import accumulate
from pathlib import Path

import pytest
from pydantic import ValidationError

from usagemeter._up import assign_demo_plans
from usagemeter.demo import DEFAULT_SEED, DEFAULT_USERS, BusinessTraffic, DemoSettings, demo_users
from usagemeter_api import ApiSettings
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import load_plans
from usagemeter_clickhouse import Client


def test_every_demo_profile_names_a_shipped_plan() -> None:
    shipped = load_plans().plans
    assert {user.plan for user in demo_users(DEFAULT_USERS)} <= set(shipped)


def test_demo_users_get_their_plans_and_alice_meters_ai_tokens(clickhouse: Client) -> None:
    store = PlanStore(load_plans())

    assigned = assign_demo_plans(clickhouse, store)

    assert assigned == {"alice": "pro", "bob": "enterprise", "carol": "free", "dave": "pro"}
    catalog = store.catalog(clickhouse)
    plan_id, plan = catalog.plan_for("alice")
    assert plan_id == "pro" and "ai_tokens" in plan.features
    assert catalog.plan_for("carol")[0] == "free"
    # A second start finds them assigned and changes nothing.
    assert assign_demo_plans(clickhouse, store) == {}


def test_a_user_with_a_plan_keeps_it(clickhouse: Client) -> None:
    store = PlanStore(load_plans())
    store.assign(clickhouse, "alice", "enterprise")

    assigned = assign_demo_plans(clickhouse, store)

    assert "alice" not in assigned
    assert store.catalog(clickhouse).plan_for("alice")[0] == "enterprise"


def test_a_plan_missing_from_the_plans_file_leaves_the_user_on_the_default_and_says_so(
    clickhouse: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text(
        'default_plan = "free"\n'
        '[plans.free]\nname = "Free"\n[plans.free.limits]\nchat_messages = 10\n'
        '[plans.pro]\nname = "Pro"\n[plans.pro.limits]\nchat_messages = 99\n'
    )
    store = PlanStore(load_plans(plans))

    with caplog.at_level(logging.WARNING, logger="usagemeter._up"):
        assigned = assign_demo_plans(clickhouse, store)

    assert assigned == {"alice": "pro", "carol": "free", "dave": "pro"}
    assert store.catalog(clickhouse).plan_for("bob")[0] == "free"
    assert "demo user bob stays on the default plan: unknown plan 'enterprise'" in caplog.text


def _running_failure_shares(rate: float | None, messages: int) -> list[float]:
    """The failed share of the report jobs after each job of the first ``messages`` chat messages."""
    business = BusinessTraffic(list(DEFAULT_USERS), DEFAULT_SEED, *(() if rate is None else (rate,)))
    jobs = [job for _ in range(messages) for job in business.next_events().jobs]
    return [failed / count for count, failed in enumerate(accumulate(job.fails for job in jobs), start=1)]


def test_report_jobs_stay_under_the_degraded_threshold_from_the_first_job_on() -> None:
    threshold = ApiSettings.model_fields["worker_failure_ratio"].default
    fifteen_minutes_at_five_per_second = 4_500  # the API judges failures over the last 15 minutes
    shares = _running_failure_shares(None, fifteen_minutes_at_five_per_second)
    assert max(shares) <= threshold, "the demo's worker would read degraded"
    assert 0 < shares[-1] < 0.05  # still a few failures to see


def test_the_failure_rate_setting_makes_the_worker_fail_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGEMETER_DEMO_JOB_FAILURE_RATE", "0.4")
    rate = DemoSettings().job_failure_rate
    assert rate == 0.4
    assert _running_failure_shares(rate, 6_000)[-1] > 0.3


@pytest.mark.parametrize("value", ["-0.1", "1.5", "often"])
def test_an_invalid_failure_rate_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("USAGEMETER_DEMO_JOB_FAILURE_RATE", value)
    with pytest.raises(ValidationError, match="job_failure_rate"):
        DemoSettings()


def test_run_demo_refuses_a_failure_rate_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="between 0 and 1, got 2"):
        BusinessTraffic(list(DEFAULT_USERS), DEFAULT_SEED, 2.0)
