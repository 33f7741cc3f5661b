"""The over-limit rule fires for exactly the users whose usage exceeds a calendar feature-total limit plus grants."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from tests.grafana import alerting
from tests.grafana.rows import UsagePoint, insert_sums, moments_today, ns, usage_as_metric
from usagemeter_api.domain.near_limit import near_limit_users
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import load_plans
from usagemeter_clickhouse import Client, SchemaOptions, connect, migrate, tables

OVER_LIMIT = "usagemeter-users-over-limit"
SERVICE = "chat-api"


def _limit(window: str, limit: float, dimension_value: str | None = None) -> dict[str, object]:
    return {"window": window, "limit": limit, "dimension_value": dimension_value}


PRO_FEATURES = {
    "ai": {"unit": "uses", "dimension": None, "limits": [_limit("month", 100), _limit("day", 30)]},
    "tokens": {
        "unit": "tokens",
        "dimension": "model",
        "limits": [_limit("week", 1000.5), _limit("month", 5, "gpt-4o")],
    },
    "pdf": {"unit": "uses", "dimension": None, "limits": [_limit("5h", 1)]},
}
#: (plan, period, limits, default, version): free's first row is superseded (it was not the default, and looser).
PLANS = (
    ("free", "month", {"ai": 500}, False, 1),
    ("free", "month", {"ai": 50, "pdf": None}, True, 2),
    ("pro", "month", PRO_FEATURES, False, 1),
)
#: zed's plan does not exist: zed is on the default plan, as is everyone unassigned.
ASSIGNMENTS = (("erin", "pro"), ("mia", "pro"), ("nick", "pro"), ("nora", "pro"), ("ken", "pro"), ("zed", "legacy"))
#: (user, feature, model, quantity) used today.
USES = (
    ("grace", "ai", "m", 60),  # over free's 50 a month
    ("zed", "ai", "m", 51),  # over by 1 on the default plan
    ("frank", "ai", "m", 50),  # exactly the limit: not over
    ("erin", "ai", "m", 40),  # over pro's 30 a day, not its 100 a month
    ("mia", "tokens", "gpt-4o-mini", Decimal("1000.5")),
    ("mia", "tokens", "gpt-4o", Decimal("0.000001")),  # over the week's 1000.5 by one micro-unit
    ("nora", "tokens", "gpt-4o", 6),  # over gpt-4o's 5 a month: a dimension limit, not covered
    ("nick", "pdf", "m", 3),  # over a rolling 5 h limit: not covered
    ("olga", "ai", "m", 60),  # a grant of 20 makes 70: not over
    ("paul", "ai", "m", 60),  # only an expired and a voided grant: over
    ("quinn", "ai", "m", 60),  # a grant of one dimension value does not raise the total: over
)
OVER = {
    ("grace", "free", "ai", "month"): 10.0,
    ("zed", "free", "ai", "month"): 1.0,
    ("erin", "pro", "ai", "day"): 10.0,
    ("mia", "pro", "tokens", "week"): 0.000001,
    ("paul", "free", "ai", "month"): 10.0,
    ("quinn", "free", "ai", "month"): 10.0,
}
GRANTED = {"olga", "paul", "quinn"}


def _grant(
    user: str, amount: int, now: datetime, *, dimension: str = "", expired: bool = False, voided: bool = False
) -> list[object]:
    """A grant row of ``amount`` of ``ai``, effective two days ago (the voiding user, reason and version follow)."""
    start = now - timedelta(days=2)
    end = now - timedelta(hours=1) if expired else None
    voided_at = now - timedelta(minutes=5) if voided else None
    return [uuid.uuid4(), user, "ai", dimension, Decimal(amount), start, end, "top-up", "admin", start, voided_at]


def _insert(client: Client, now: datetime) -> None:
    plan_columns = ["PlanId", "Name", "Period", "NearLimitRatio", "Enforcement", "Limits", "IsDefault", "Version"]
    plan_rows = [[p, p.title(), period, 0.8, "hard", json.dumps(limits), d, v] for p, period, limits, d, v in PLANS]
    client.insert(tables.PLANS, plan_rows, column_names=plan_columns)
    client.insert(
        tables.PLAN_ASSIGNMENTS, [[u, p, 1] for u, p in ASSIGNMENTS], column_names=["UserId", "PlanId", "Version"]
    )
    (today,) = moments_today(now, 1)
    points = [UsagePoint(SERVICE, f, u, ns(today), float(q), model) for u, f, model, q in USES]
    # ken used 1,000 just before this month began: none of it counts now.
    month_start = datetime.combine(now.date().replace(day=1), time(), tzinfo=UTC)
    points.append(UsagePoint(SERVICE, "ai", "ken", ns(month_start - timedelta(hours=3)), 1000.0, "m"))
    insert_sums(client, [usage_as_metric(p) for p in points])
    grants = [_grant("olga", 20, now), _grant("paul", 20, now, expired=True), _grant("paul", 20, now, voided=True)]
    grants.append(_grant("quinn", 20, now, dimension="m"))
    rows = [[*g, "admin" if g[-1] else "", "mistake" if g[-1] else "", k + 1] for k, g in enumerate(grants)]
    columns = ["GrantId", "UserId", "FeatureKey", "DimensionValue", "Amount", "EffectiveFrom", "ExpiresAt", "Reason"]
    columns += ["GrantedBy", "GrantedAt", "VoidedAt", "VoidedBy", "VoidReason", "Version"]
    client.insert(tables.USAGE_GRANTS, rows, column_names=columns)


@pytest.fixture(scope="module")
def quotas(chdb_url: str) -> Iterator[Client]:
    client = connect(chdb_url, f"t_alert_quotas_{uuid.uuid4().hex[:8]}", create_database=True)
    migrate(client, SchemaOptions(dimension_attributes=("model",)))
    _insert(client, datetime.now(UTC))
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{client.database}`")
    client.close()


def _firing(client: Client) -> dict[tuple[str, str, str, str], float]:
    instances = alerting.evaluate(client, alerting.rule(OVER_LIMIT))
    assert all(i.firing for i in instances), "only users over a limit are listed"
    return {(i.labels["user"], i.labels["plan"], i.labels["feature"], i.labels["window"]): i.value for i in instances}


def test_users_over_a_calendar_limit_fire_exactly_by_how_much(quotas: Client):
    found = _firing(quotas)
    assert set(found) == set(OVER)
    for key, over_by in OVER.items():
        assert found[key] == pytest.approx(over_by, abs=1e-9), key


def test_the_rule_agrees_with_the_apis_near_limit_users_for_users_without_grants(quotas: Client):
    catalog = PlanStore(load_plans()).catalog(quotas)
    exceeded = {
        (item.user_id, item.plan_id, item.feature_key, item.window)
        for item in near_limit_users(quotas, catalog, datetime.now(UTC))
        if item.exceeded and item.user_id not in GRANTED
    }
    assert exceeded == {key for key in _firing(quotas) if key[0] not in GRANTED}


def test_no_usage_fires_nothing(chdb_url: str):
    client = connect(chdb_url, f"t_alert_quiet_{uuid.uuid4().hex[:8]}", create_database=True)
    try:
        migrate(client)
        plan_columns = ["PlanId", "Name", "Period", "NearLimitRatio", "Enforcement", "Limits", "IsDefault", "Version"]
        client.insert(
            tables.PLANS, [["free", "Free", "month", 0.8, "hard", '{"ai": 0}', True, 1]], column_names=plan_columns
        )
        assert alerting.evaluate(client, alerting.rule(OVER_LIMIT)) == []
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{client.database}`")
        client.close()
