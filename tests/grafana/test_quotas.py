"""The Quotas dashboard shows exactly the users made to reach their limits, as the API judges them."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from tests.grafana.conftest import SeededData
from tests.grafana.rows import UsagePoint, insert_sums, ns, usage_as_metric
from tests.grafana.runner import Runner, all_selected, dashboard_titled, panel_sql, records, scalar
from tests.grafana.seed_quotas import AI, DEFAULT_PLAN, NEAR, OVER, PDF, PLAN_OF, PLAN_VERSIONS, SERVICE
from usagemeter_api.domain.near_limit import near_limit_users
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import load_plans
from usagemeter_clickhouse import Client, connect, migrate, tables


def _runner(clickhouse: Client, seeded: SeededData) -> Runner:
    return Runner(clickhouse, dashboard_titled("Quotas"), seeded)


def _near_or_over(runner: Runner, selection: dict[str, list[str]]) -> list[dict[str, object]]:
    return records(runner, panel_sql(runner.dashboard, "Near or over limit"), selection)


def test_near_or_over_lists_exactly_the_users_made_to_reach_their_limits(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    rows = _near_or_over(runner, all_selected(runner.dashboard))
    found = {(row["user"], row["feature"]): row for row in rows}
    assert {key for key, row in found.items() if row["status"] == "over"} == OVER
    assert {key for key, row in found.items() if row["status"] == "near"} == NEAR
    assert len(rows) == len(found)
    assert all(row["plan"] == PLAN_OF[str(row["user"])] for row in rows)
    erin = found[("erin", AI)]
    assert (erin["used"], erin["limit"], erin["percent"]) == (250.0, 200, 125.0)
    grace = found[("grace", PDF)]
    assert (grace["used"], grace["limit"], grace["percent"]) == (80.0, 100, 80.0)
    # Highest share first.
    assert [row["percent"] for row in rows] == sorted((row["percent"] for row in rows), reverse=True)


def test_each_plan_counts_its_own_period(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    found = {(row["user"], row["feature"]): row for row in _near_or_over(runner, all_selected(runner.dashboard))}
    today = runner.time_to.date()
    monday = today - timedelta(days=today.weekday())
    # heidi used 100 more yesterday; her daily period starts today and counts 12.
    assert (found[("heidi", AI)]["period_start"], found[("heidi", AI)]["used"]) == (today, 12.0)
    assert (found[("heidi", AI)]["period_end"]) == today + timedelta(days=1)
    assert (found[("ivan", AI)]["period_start"], found[("ivan", AI)]["period_end"]) == (monday, monday + timedelta(7))
    assert found[("erin", AI)]["period_start"] == today.replace(day=1)
    # ken's 1,000 uses of last month leave him far below his limit.
    assert ("ken", AI) not in found


def test_status_counts_and_filters(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    everything = all_selected(runner.dashboard)
    over, near = panel_sql(runner.dashboard, "Quotas over limit"), panel_sql(runner.dashboard, "Quotas near limit")
    assert (scalar(runner, over, everything), scalar(runner, near, everything)) == (len(OVER), len(NEAR))
    daily = {**everything, "plan": ["daily"]}
    assert {(row["user"], row["feature"]) for row in _near_or_over(runner, daily)} == {("heidi", AI), ("heidi", PDF)}
    pdf = {**everything, "feature": [PDF]}
    assert (scalar(runner, over, pdf), scalar(runner, near, pdf)) == (0, 2)
    two = {**everything, "user": ["erin", "judy"]}
    assert {row["user"] for row in _near_or_over(runner, two)} == {"erin", "judy"}
    assert scalar(runner, panel_sql(runner.dashboard, "Highest share of a limit"), everything) == 125.0


def test_the_user_variable_puts_the_closest_to_their_limits_first(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    assert runner.variable_values("user", all_selected(runner.dashboard))[:3] == ["erin", "grace", "heidi"]
    assert runner.variable_values("user", {"plan": ["daily"], "feature": [AI]}) == ["heidi", "lou"]
    assert runner.variable_values("plan", {}) == sorted({p.plan_id for p in PLAN_VERSIONS})
    assert runner.variable_values("feature", {"plan": ["pro"]}) == [AI, PDF]


def test_the_dashboard_agrees_with_the_api(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    catalog = PlanStore(load_plans()).catalog(clickhouse)
    from_api = {
        (item.user_id, item.plan_id, item.feature_key, float(item.used), item.limit, item.percent_used, item.exceeded)
        for item in near_limit_users(clickhouse, catalog, runner.time_to)
    }
    shown = {
        (row["user"], row["plan"], row["feature"], row["used"], row["limit"], row["percent"], row["status"] == "over")
        for row in _near_or_over(runner, all_selected(runner.dashboard))
    }
    assert shown == from_api


def test_users_and_uses_per_plan(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    everything = all_selected(runner.dashboard)
    month_start = runner.time_to.date().replace(day=1)
    unassigned = {p.user for p in seeded.usage if p.user not in PLAN_OF and _day(p.time_ns) >= month_start}
    expected = Counter(PLAN_OF.values()) + Counter({DEFAULT_PLAN: len(unassigned)})
    rows = records(runner, panel_sql(runner.dashboard, "Users per plan"), everything)
    assert {row["plan"]: row["users"] for row in rows} == dict(expected)
    uses = records(runner, panel_sql(runner.dashboard, "Uses per plan"), everything)
    expected_uses = Counter[str]()
    for point in seeded.usage:
        expected_uses[PLAN_OF.get(point.user, DEFAULT_PLAN)] += point.value
    assert {row["plan"]: row["uses"] for row in uses} == dict(expected_uses)


def test_burn_down_climbs_to_the_period_total(clickhouse: Client, seeded: SeededData):
    runner = _runner(clickhouse, seeded)
    selection = {"plan": ["pro"], "feature": [AI], "user": ["erin"]}
    rows = records(runner, panel_sql(runner.dashboard, "Burn-down"), selection)
    assert {row["series"] for row in rows} == {f"erin · {AI}"}
    used = [row["used"] for row in rows]
    assert used == sorted(used) and used[-1] == 250.0
    assert {row["limit"] for row in rows} == {200}


def _day(time_ns: int) -> date:
    return datetime.fromtimestamp(time_ns // 1_000_000_000, UTC).date()


def test_limits_stored_with_units_read_their_limit_over_the_plans_period_and_their_unit(chdb_url: str):
    """A plan stored by this release holds ``{feature: {"unit", "limits": [...]}}``; earlier rows hold numbers."""
    database = f"t_units_{uuid.uuid4().hex[:8]}"
    client = connect(chdb_url, database, create_database=True)
    try:
        migrate(client)
        tokens = {
            "unit": "tokens",
            "dimension": "model",
            "limits": [
                {"window": "5h", "limit": 10, "dimension_value": None},
                {"window": "month", "limit": 1000.5, "dimension_value": None},
                {"window": "month", "limit": 20, "dimension_value": "gpt-4o"},
            ],
        }
        limits = json.dumps({"ai_tokens": tokens, AI: 10, PDF: None})
        client.insert(
            tables.PLANS,
            [["metered", "Metered", "month", 0.8, "hard", limits, True, 1]],
            column_names=[
                "PlanId",
                "Name",
                "Period",
                "NearLimitRatio",
                "Enforcement",
                "Limits",
                "IsDefault",
                "Version",
            ],
        )
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        usage = [UsagePoint(SERVICE, "ai_tokens", "mia", ns(now), 900.25), UsagePoint(SERVICE, AI, "mia", ns(now), 9.0)]
        insert_sums(client, [usage_as_metric(p) for p in usage])
        seeded = SeededData(now, tuple(usage), (), (), 0)
        runner = Runner(client, dashboard_titled("Quotas"), seeded)
        rows = {row["feature"]: row for row in _near_or_over(runner, all_selected(runner.dashboard))}
        assert (rows["ai_tokens"]["unit"], rows["ai_tokens"]["used"], rows["ai_tokens"]["limit"]) == (
            "tokens",
            900.25,
            1000.5,
        )
        assert (rows[AI]["unit"], rows[AI]["used"], rows[AI]["limit"]) == ("uses", 9.0, 10)
        assert PDF not in rows
        usage_runner = Runner(client, dashboard_titled("Feature usage"), seeded)
        bar = records(
            usage_runner, panel_sql(usage_runner.dashboard, "Uses by feature"), all_selected(usage_runner.dashboard)
        )
        assert {row["feature"] for row in bar} >= {"ai_tokens (tokens)", f"{AI} (uses)"}
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()
