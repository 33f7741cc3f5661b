"""``/quotas``: a user's usage against the limits of their plan in the current period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from usagemeter_api.deps import ClickHouse, Clock, Plans, TargetUser
from usagemeter_api.errors import error_responses
from usagemeter_api.live_usage import LiveUsage
from usagemeter_api.periods import Window, period_window
from usagemeter_api.plans import Plan
from usagemeter_api.quota import evaluate_quota
from usagemeter_api.schemas import FeatureQuota, PlanSummary, QuotaCheck, QuotaList
from usagemeter_api.usage import usage_totals
from usagemeter_api.usage_cache import UsageCache

router = APIRouter(prefix="/quotas", tags=["quotas"])

_NOT_FOUND: dict[int, str] = {status.HTTP_404_NOT_FOUND: "The plan does not meter this feature."}
_AUTH: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "Missing, expired or invalid bearer token.",
    status.HTTP_403_FORBIDDEN: "A non-admin asked for another user's quotas.",
}


@router.get("", response_model=QuotaList, responses=error_responses(_AUTH))
def list_quotas(user_id: TargetUser, plans: Plans, client: ClickHouse, now: Clock, live: Live) -> QuotaList:
    """Every metered feature of the user's plan with its usage in the current period."""
    plan_id, plan = plans.plan_for(user_id)
    window = period_window(plan.period, now)
    used = _live_or(live, user_id, list(plan.limits), window) or usage_totals(
        client, user_id, list(plan.limits), window
    )
    return QuotaList(
        user_id=user_id,
        plan=_summary(plan_id, plan),
        period_start=window.start,
        period_end=window.end,
        quotas=[
            evaluate_quota(key, used.get(key, 0.0), limit, plan.near_limit_ratio, window)
            for key, limit in plan.limits.items()
        ],
    )


@router.get("/{feature_key}", response_model=FeatureQuota, responses=error_responses(_AUTH | _NOT_FOUND))
def get_quota(
    feature_key: str, user_id: TargetUser, plans: Plans, client: ClickHouse, now: Clock, live: Live
) -> FeatureQuota:
    """One feature's usage against its limit in the current period."""
    plan_id, plan = plans.plan_for(user_id)
    limit = _limit_of(plan_id, plan, feature_key)
    window = period_window(plan.period, now)
    totals = _live_or(live, user_id, [feature_key], window) or usage_totals(client, user_id, [feature_key], window)
    used = totals.get(feature_key, 0.0)
    item = evaluate_quota(feature_key, used, limit, plan.near_limit_ratio, window)
    return FeatureQuota(user_id=user_id, plan_id=plan_id, **item.model_dump())


@router.get("/{feature_key}/check", response_model=QuotaCheck, responses=error_responses(_AUTH | _NOT_FOUND))
def check_quota(
    feature_key: str,
    user_id: TargetUser,
    plans: Plans,
    client: ClickHouse,
    now: Clock,
    cache: Cache,
    live: Live,
    amount: Annotated[int, Query(ge=1, le=1_000_000, description="Uses the host is about to perform.")] = 1,
) -> QuotaCheck:
    """Call before metered work: whether ``amount`` more uses are allowed, what remains and when it resets.

    A hard plan refuses work that would go past the limit; a soft plan allows it and
    reports ``exceeded``. ``used`` is exact as of ClickHouse's data about a second ago.
    """
    plan_id, plan = plans.plan_for(user_id)
    limit = _limit_of(plan_id, plan, feature_key)
    window = period_window(plan.period, now)
    totals = _live_or(live, user_id, [feature_key], window)
    used = cache.used(client, user_id, feature_key, window) if totals is None else totals[feature_key]
    item = evaluate_quota(feature_key, used, limit, plan.near_limit_ratio, window)
    fits = limit is None or used + amount <= limit
    return QuotaCheck(
        user_id=user_id,
        plan_id=plan_id,
        feature_key=feature_key,
        allowed=fits or plan.enforcement == "soft",
        enforcement=plan.enforcement,
        amount=amount,
        used=item.used,
        limit=limit,
        remaining=item.remaining,
        near_limit=item.near_limit,
        exceeded=item.exceeded,
        reset_at=window.end,
    )


def _limit_of(plan_id: str, plan: Plan, feature_key: str) -> int | None:
    if feature_key not in plan.limits:
        known = ", ".join(plan.limits) or "none"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"plan {plan_id!r} does not meter feature {feature_key[:100]!r}; its features: {known}",
        )
    return plan.limits[feature_key]


def usage_cache(request: Request) -> UsageCache:
    """The app's short-lived cache of period usage totals."""
    cache: UsageCache = request.app.state.usage_cache
    return cache


Cache = Annotated[UsageCache, Depends(usage_cache)]


def live_usage(request: Request) -> LiveUsage | None:
    """The app's in-memory view of current-period usage, when enabled."""
    live: LiveUsage | None = request.app.state.live_usage
    return live


Live = Annotated[LiveUsage | None, Depends(live_usage)]


def _live_or(live: LiveUsage | None, user_id: str, feature_keys: list[str], window: Window) -> dict[str, float] | None:
    # None (read ClickHouse) until the view is loaded, and for windows it does not hold.
    return None if live is None else live.used(user_id, feature_keys, window)


def _summary(plan_id: str, plan: Plan) -> PlanSummary:
    return PlanSummary(id=plan_id, name=plan.name, period=plan.period, near_limit_ratio=plan.near_limit_ratio)
