"""Users near or over their feature-total calendar limits, found from the day rollup in one query per window kind.

Covered: every feature-total limit over a calendar day, ISO week or month. Not covered: billing
cycles (each user's range differs), lifetime and rolling windows, dimension-value limits and
grants; the quota endpoints answer those per user.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from usagemeter_api.domain.periods import Window, period_window
from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_api.domain.quota import limit_figures
from usagemeter_api.quantity import as_decimal, from_micros, micros_of_decimal
from usagemeter_api.schemas.admin import NearLimitUser
from usagemeter_api.schemas.plans import LimitRule
from usagemeter_clickhouse import Client, tables

__all__ = ["near_limit_users"]

_Calendar = Literal["day", "week", "month"]
_CALENDAR: tuple[_Calendar, ...] = ("day", "week", "month")

# Only (user, feature) totals at or above the lowest threshold any plan sets for the feature over
# the window kind leave ClickHouse; the plan of each user is then checked exactly.
_CANDIDATES_SQL = f"""
SELECT UserId, FeatureKey, sum(Quantity) AS Total FROM {tables.USAGE_DAY}
WHERE Day >= {{first_day:Date}} AND Day < {{end_day:Date}} AND DimensionKey = ''
  AND FeatureKey IN {{keys:Array(String)}}
GROUP BY UserId, FeatureKey
HAVING Total >= {{floors:Array(Decimal128(6))}}[indexOf({{keys:Array(String)}}, FeatureKey)]
"""


def near_limit_users(client: Client, catalog: PlanCatalog, now: datetime) -> list[NearLimitUser]:
    """Every (user, feature, calendar window) at or past the near-limit threshold of the user's plan, highest first."""
    found: list[NearLimitUser] = []
    for kind in _CALENDAR:
        found.extend(_near_in_window(client, catalog, kind, now))
    found.sort(key=lambda item: (-item.percent_used, item.user_id, item.feature_key, item.window))
    return found


def _total_rule(plan: Plan, feature_key: str, kind: _Calendar) -> LimitRule | None:
    feature = plan.features.get(feature_key)
    if feature is None:
        return None
    return next((rule for rule in feature.limits if rule.dimension_value is None and rule.window.kind == kind), None)


def _floors(catalog: PlanCatalog, kind: _Calendar) -> dict[str, int]:
    """The lowest near-limit threshold per feature among the plans' limits of ``kind``, in micro-units."""
    floors: dict[str, int] = {}
    for plan in catalog.plans.values():
        for key in plan.features:
            rule = _total_rule(plan, key, kind)
            if rule is not None:
                # Rounded down to whole micro-units, so no candidate at the exact threshold is missed.
                floor = int(Decimal(str(plan.near_limit_ratio)) * rule.limit_micros)
                floors[key] = min(floors.get(key, floor), floor)
    return floors


def _near_in_window(client: Client, catalog: PlanCatalog, kind: _Calendar, now: datetime) -> list[NearLimitUser]:
    floors = _floors(catalog, kind)
    if not floors:
        return []
    window = period_window(kind, now)
    parameters = {
        "first_day": window.start.date(),
        "end_day": window.end.date(),
        "keys": list(floors),
        "floors": [as_decimal(floor) for floor in floors.values()],
    }
    found = []
    for user_id, feature_key, total in client.query(_CANDIDATES_SQL, parameters=parameters).result_rows:
        entry = _entry(catalog, user_id, feature_key, micros_of_decimal(total), kind, window, now)
        if entry is not None:
            found.append(entry)
    return found


def _entry(
    catalog: PlanCatalog, user_id: str, feature_key: str, used: int, kind: _Calendar, window: Window, now: datetime
) -> NearLimitUser | None:
    plan_id, plan = catalog.plan_for(user_id)
    rule = _total_rule(plan, feature_key, kind)
    if rule is None:
        return None
    figures = limit_figures(rule, feature_key, window, used, (), plan.near_limit_ratio, now)
    if not (figures.near_limit or figures.exceeded):
        return None
    return NearLimitUser(
        user_id=user_id,
        plan_id=plan_id,
        feature_key=feature_key,
        window=kind,
        used=from_micros(used),
        limit=from_micros(figures.limit),
        percent_used=figures.percent_used,
        exceeded=figures.exceeded,
    )
