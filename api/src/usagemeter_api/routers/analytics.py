"""``/analytics``: a user's day-by-day usage of a feature."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from usagemeter_api.deps import ClickHouse, Clock, Plans, TargetUser
from usagemeter_api.periods import Window, day_start, period_window, to_utc
from usagemeter_api.plans import PeriodKind
from usagemeter_api.schemas import AnalyticsPeriod, DailyUsage, UsageReport
from usagemeter_api.usage import as_number, daily_usage

router = APIRouter(prefix="/analytics", tags=["analytics"])

_PERIOD_KIND: dict[str, PeriodKind] = {"today": "day", "week": "week", "month": "month"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Missing, expired or invalid bearer token."},
    status.HTTP_403_FORBIDDEN: {"description": "A non-admin asked for another user's usage."},
    status.HTTP_404_NOT_FOUND: {"description": "No plan meters this feature."},
}


@router.get("/usage/{feature_key}", response_model=UsageReport, responses=_RESPONSES)
def feature_usage(
    feature_key: str,
    user_id: TargetUser,
    plans: Plans,
    client: ClickHouse,
    now: Clock,
    period: Annotated[AnalyticsPeriod, Query(description="The current UTC day, ISO week or calendar month.")] = "month",
) -> UsageReport:
    """Usage of one feature in the current period: the total so far and one entry per day up to today."""
    known = plans.feature_keys()
    if feature_key not in known:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"unknown feature {feature_key[:100]!r}; known features: {', '.join(known) or 'none'}",
        )
    window = period_window(_PERIOD_KIND[period], now)
    days = Window(window.start, day_start(to_utc(now).date() + timedelta(days=1))).days()
    per_day = daily_usage(client, user_id, feature_key, days[0], days[-1])
    return UsageReport(
        user_id=user_id,
        feature_key=feature_key,
        period=period,
        period_start=window.start,
        period_end=window.end,
        total=as_number(sum(per_day.values(), 0.0)),
        series=[DailyUsage(day=day, used=as_number(per_day.get(day, 0.0))) for day in days],
    )
