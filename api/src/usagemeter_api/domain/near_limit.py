"""Users near or over their limits, found from the day rollup in one query per period kind."""

from __future__ import annotations

from datetime import datetime

from usagemeter_api.domain.periods import period_window
from usagemeter_api.domain.plans import PeriodKind, PlanCatalog
from usagemeter_api.domain.quota import evaluate_quota
from usagemeter_api.schemas.admin import NearLimitUser
from usagemeter_clickhouse import Client, tables

__all__ = ["near_limit_users"]

# Only (user, feature) totals at or above the lowest threshold any plan of the period sets
# for the feature leave ClickHouse; the plan of each user is then checked exactly.
_CANDIDATES_SQL = f"""
SELECT UserId, FeatureKey, sum(Uses) AS total FROM {tables.USAGE_DAY}
WHERE Day >= {{first_day:Date}} AND Day < {{end_day:Date}} AND FeatureKey IN {{keys:Array(String)}}
GROUP BY UserId, FeatureKey
HAVING total >= {{floors:Array(Float64)}}[indexOf({{keys:Array(String)}}, FeatureKey)]
"""


def near_limit_users(client: Client, catalog: PlanCatalog, now: datetime) -> list[NearLimitUser]:
    """Every (user, feature) at or past the near-limit threshold of the user's plan, highest share first."""
    found: list[NearLimitUser] = []
    for kind in sorted({plan.period for plan in catalog.plans.values()}):
        found.extend(_near_in_period(client, catalog, kind, now))
    found.sort(key=lambda item: (-item.percent_used, item.user_id, item.feature_key))
    return found


def _floors(catalog: PlanCatalog, kind: PeriodKind) -> dict[str, float]:
    floors: dict[str, float] = {}
    for plan in catalog.plans.values():
        if plan.period != kind:
            continue
        for key, limit in plan.limits.items():
            if limit is not None:
                floors[key] = min(floors.get(key, float("inf")), plan.near_limit_ratio * limit)
    return floors


def _near_in_period(client: Client, catalog: PlanCatalog, kind: PeriodKind, now: datetime) -> list[NearLimitUser]:
    floors = _floors(catalog, kind)
    if not floors:
        return []
    window = period_window(kind, now)
    parameters = {
        "first_day": window.start.date(),
        "end_day": window.end.date(),
        "keys": list(floors),
        "floors": list(floors.values()),
    }
    found = []
    for user_id, feature_key, total in client.query(_CANDIDATES_SQL, parameters=parameters).result_rows:
        plan_id, plan = catalog.plan_for(user_id)
        limit = plan.limits.get(feature_key)
        if plan.period != kind or limit is None:
            continue
        item = evaluate_quota(feature_key, float(total), limit, plan.near_limit_ratio, window)
        if item.near_limit or item.exceeded:
            found.append(
                NearLimitUser(
                    user_id=user_id,
                    plan_id=plan_id,
                    feature_key=feature_key,
                    used=item.used,
                    limit=limit,
                    percent_used=item.percent_used or 0.0,
                    exceeded=item.exceeded,
                )
            )
    return found
