"""Plans, assignments and usage near and over the limits, for the Quotas dashboard.

Every plan's period (UTC day, ISO week, calendar month) contains today, so usage placed
between today's midnight and now counts in all of them; usage before the period starts
must not count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from tests.grafana.rows import UsagePoint, moments_today, ns
from usagemeter_clickhouse import Client, tables

AI = "ai_content_generation"
PDF = "pdf_export"
SERVICE = "chat-api"


@dataclass(frozen=True)
class PlanVersion:
    plan_id: str
    period: str
    ratio: float
    limits: dict[str, int | None]
    is_default: bool
    version: int


#: Version 1 rows are superseded: if a query read them, pro would be the default plan
#: with a limit of 100, and dan and erin would both be over it.
PLAN_VERSIONS = (
    PlanVersion("daily", "day", 0.9, {AI: 10, PDF: 5}, False, 1),
    PlanVersion("free", "month", 0.8, {AI: 50, PDF: 100}, False, 1),
    PlanVersion("free", "month", 0.8, {AI: 50, PDF: 100}, True, 2),
    PlanVersion("pro", "month", 0.8, {AI: 100}, True, 1),
    PlanVersion("pro", "month", 0.8, {AI: 200, PDF: None}, False, 2),
    PlanVersion("team", "week", 0.75, {AI: 100, PDF: None}, False, 1),
)
#: (user, plan, version); judy's plan does not exist, so she is on the default plan.
ASSIGNMENTS = (
    ("dan", "pro", 1),
    ("erin", "free", 1),
    ("erin", "pro", 2),
    ("frank", "free", 1),
    ("heidi", "daily", 1),
    ("lou", "daily", 1),
    ("ivan", "team", 1),
    ("judy", "legacy", 1),
    ("ken", "pro", 1),
)
PLAN_OF = {"dan": "pro", "erin": "pro", "frank": "free", "heidi": "daily", "lou": "daily", "ivan": "team"}
PLAN_OF |= {"judy": "free", "ken": "pro", "grace": "free"}
DEFAULT_PLAN = "free"

#: Uses in the current period.
PERIOD_USES = {
    ("dan", AI): 170,  # 85 % of 200: near
    ("dan", PDF): 500,  # unlimited on pro: never listed
    ("erin", AI): 250,  # over 200
    ("frank", AI): 50,  # exactly the limit: near, not over
    ("grace", AI): 60,  # over 50 on the default plan
    ("grace", PDF): 80,  # exactly 80 % of 100
    ("heidi", AI): 12,  # over the daily 10
    ("heidi", PDF): 5,  # at the daily limit: near
    ("ivan", AI): 80,  # 80 % of 100 with a 75 % ratio: near
    ("judy", AI): 45,  # 90 % of 50: near
    ("ken", AI): 10,  # 5 %
    ("lou", AI): 8,  # 80 % with a 90 % ratio: not near
}
OVER = {("erin", AI), ("grace", AI), ("heidi", AI)}
NEAR = {("dan", AI), ("frank", AI), ("grace", PDF), ("heidi", PDF), ("ivan", AI), ("judy", AI)}


def insert_plans(client: Client) -> None:
    """Every plan version and assignment, superseded rows included."""
    plan_rows = [
        [p.plan_id, p.plan_id.title(), p.period, p.ratio, "hard", json.dumps(p.limits), p.is_default, p.version]
        for p in PLAN_VERSIONS
    ]
    columns = ["PlanId", "Name", "Period", "NearLimitRatio", "Enforcement", "Limits", "IsDefault", "Version"]
    client.insert(tables.PLANS, plan_rows, column_names=columns)
    client.insert(tables.PLAN_ASSIGNMENTS, [list(a) for a in ASSIGNMENTS], column_names=["UserId", "PlanId", "Version"])


def period_usage(now: datetime) -> list[UsagePoint]:
    """``PERIOD_USES`` in three points each, between today's midnight (or 90 minutes ago) and now."""
    moments = moments_today(now, 3)
    points = []
    for (user, feature), total in PERIOD_USES.items():
        parts = [total // 3, total // 3, total - 2 * (total // 3)]
        points += [UsagePoint(SERVICE, feature, user, ns(m), float(v)) for m, v in zip(moments, parts, strict=True)]
    return points


def earlier_usage(now: datetime) -> list[UsagePoint]:
    """Large uses just before heidi's daily and ken's monthly period began, outside any recent time range."""
    midnight = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    month_start = midnight.replace(day=1)
    return [
        UsagePoint(SERVICE, AI, "heidi", ns(midnight - timedelta(hours=3)), 100.0),
        UsagePoint(SERVICE, AI, "ken", ns(month_start - timedelta(hours=3)), 1000.0),
    ]
