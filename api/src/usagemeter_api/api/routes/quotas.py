"""``/quotas``: a user's usage against the limits of their plan in the current period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from usagemeter_api.api.deps import (
    BEARER_SECURITY,
    Clock,
    OtherUserId,
    Plans,
    ServicesDep,
    TargetUser,
    authenticate,
    plan_catalog,
    services_of,
    whose_data,
)
from usagemeter_api.domain.periods import period_window
from usagemeter_api.domain.plans import Plan
from usagemeter_api.domain.quota import allows, evaluate_quota, plan_quotas, plan_summary, quota_figures
from usagemeter_api.schemas.errors import error_responses
from usagemeter_api.schemas.quotas import FeatureQuota, QuotaCheck, QuotaListing

router = APIRouter(prefix="/quotas", tags=["quotas"])

_NOT_FOUND: dict[int, str] = {status.HTTP_404_NOT_FOUND: "The plan does not meter this feature."}
_AUTH: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "Missing, expired or invalid bearer token.",
    status.HTTP_403_FORBIDDEN: "A non-admin asked for another user's quotas.",
}


# Declared first: the quota check is the hottest route, and routes are matched in order.
@router.get(
    "/{feature_key}/check",
    response_model=QuotaCheck,
    responses=error_responses(_AUTH | _NOT_FOUND),
    openapi_extra=BEARER_SECURITY,
)
async def check_quota(
    request: Request,
    feature_key: str,
    user_id: OtherUserId = None,
    amount: Annotated[int, Query(ge=1, le=1_000_000, description="Uses the host is about to perform.")] = 1,
) -> Response:
    """Call before metered work: whether ``amount`` more uses are allowed, what remains and when it resets.

    A hard plan refuses work that would go past the limit; a soft plan allows it and
    reports ``exceeded``. ``used`` is exact as of ClickHouse's data about a second ago
    (``as_of``). When the in-memory figures fall behind, the user's own are read from
    ClickHouse; while they cannot be read the check answers from the usage last read, with
    ``stale: true``, for up to ``USAGEMETER_QUOTA_MAX_STALENESS_SECONDS``.
    """
    # The hot path: the bearer check, the plans and the services are called here rather than
    # resolved as dependencies, since resolving one costs more than the lookup it wraps.
    # (So a bad query parameter is reported before a missing token here.)
    user_id = whose_data(await authenticate(request), user_id)
    plan_id, plan = (await plan_catalog(request)).plan_for(user_id)
    limit = _limit_of(plan_id, plan, feature_key)
    services = services_of(request)
    window = period_window(plan.period, services.clock())
    totals, freshness = await services.period_usage.reading(user_id, [feature_key], window, reuse=True)
    used = totals[feature_key]
    item = quota_figures(used, limit, plan.near_limit_ratio)
    answer = QuotaCheck(
        user_id=user_id,
        plan_id=plan_id,
        feature_key=feature_key,
        allowed=allows(used, amount, limit, plan.enforcement),
        enforcement=plan.enforcement,
        amount=amount,
        used=item.used,
        limit=limit,
        remaining=item.remaining,
        near_limit=item.near_limit,
        exceeded=item.exceeded,
        reset_at=window.end,
        as_of=freshness.as_of,
        stale=freshness.stale,
    )
    # Serialised here: the model is built from checked values, so FastAPI's second
    # validation of the return value would only repeat the work.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("", response_model=QuotaListing, responses=error_responses(_AUTH))
async def list_quotas(user_id: TargetUser, plans: Plans, now: Clock, services: ServicesDep) -> QuotaListing:
    """Every metered feature of the user's plan with its usage in the current period, and how fresh it is."""
    plan_id, plan = plans.plan_for(user_id)
    window = period_window(plan.period, now)
    used, freshness = await services.period_usage.reading(user_id, list(plan.limits), window)
    return QuotaListing(
        user_id=user_id,
        plan=plan_summary(plan_id, plan),
        period_start=window.start,
        period_end=window.end,
        quotas=plan_quotas(plan, used, window),
        as_of=freshness.as_of,
        stale=freshness.stale,
    )


@router.get("/{feature_key}", response_model=FeatureQuota, responses=error_responses(_AUTH | _NOT_FOUND))
async def get_quota(
    feature_key: str, user_id: TargetUser, plans: Plans, now: Clock, services: ServicesDep
) -> FeatureQuota:
    """One feature's usage against its limit in the current period, and how fresh it is."""
    plan_id, plan = plans.plan_for(user_id)
    limit = _limit_of(plan_id, plan, feature_key)
    window = period_window(plan.period, now)
    used, freshness = await services.period_usage.reading(user_id, [feature_key], window)
    item = evaluate_quota(feature_key, used.get(feature_key, 0.0), limit, plan.near_limit_ratio, window)
    return FeatureQuota(
        user_id=user_id, plan_id=plan_id, **item.model_dump(), as_of=freshness.as_of, stale=freshness.stale
    )


def _limit_of(plan_id: str, plan: Plan, feature_key: str) -> int | None:
    if feature_key not in plan.limits:
        known = ", ".join(plan.limits) or "none"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"plan {plan_id!r} does not meter feature {feature_key[:100]!r}; its features: {known}",
        )
    return plan.limits[feature_key]
