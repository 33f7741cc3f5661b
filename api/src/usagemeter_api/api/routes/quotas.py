"""``/quotas``: a user's usage against each limit of their plan over its window, and the quota check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic_core import to_json

from usagemeter_api.api.deps import (
    BEARER_SECURITY,
    Clock,
    Plans,
    ServicesDep,
    TargetUser,
    authenticate,
    plan_catalog,
    query_model,
    services_of,
    whose_data,
)
from usagemeter_api.domain.grants import Grant
from usagemeter_api.domain.periods import LIFETIME, period_window
from usagemeter_api.domain.plans import Plan
from usagemeter_api.domain.quota import LimitFigures, allows, binding_of
from usagemeter_api.domain.quota_answers import (
    Readings,
    binding_fields,
    evaluate,
    layout_of,
    limit_fields,
    plan_summary,
    read_minutes,
    read_plan_quotas,
    read_windows,
    with_frees,
)
from usagemeter_api.domain.quota_windows import FeatureLayout
from usagemeter_api.quantity import from_micros, to_micros
from usagemeter_api.schemas.errors import error_responses
from usagemeter_api.schemas.quota_check import FEATURE_KEY_PARAMETER, CheckQuery, query_parameters
from usagemeter_api.schemas.quotas import FeatureQuota, QuotaCheck, QuotaListing
from usagemeter_api.services import Services

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
    openapi_extra=BEARER_SECURITY | {"parameters": [FEATURE_KEY_PARAMETER, *query_parameters(CheckQuery)]},
)
async def check_quota(request: Request) -> Response:
    """Call before metered work: whether ``amount`` more is allowed, which limit binds and when it frees up.

    Every matching limit counts: the feature total's and, with ``dimension``, that value's. A hard
    plan refuses work that would go past any of them; a soft plan allows it and reports
    ``exceeded``. ``used`` is exact as of ClickHouse's data about a second ago (``as_of``). When
    the in-memory figures fall behind, the user's own are read from ClickHouse; while they cannot
    be read the check answers from the usage last read, with ``stale: true``, for up to
    ``USAGEMETER_QUOTA_MAX_STALENESS_SECONDS``.
    """
    # The hot path: the bearer check, the plans and the services are called here rather than
    # resolved as dependencies, since resolving one costs more than the lookup it wraps.
    # (So a bad query parameter is reported before a missing token here.) The query parameters are
    # read here too, as CheckQuery says why.
    feature_key: str = request.path_params["feature_key"]
    query = query_model(CheckQuery, request)
    dimension = query.dimension
    user_id = whose_data(await authenticate(request), query.user_id)
    catalog = await plan_catalog(request)
    plan_id, plan = catalog.plan_for(user_id)
    layout = _layout(plan_id, plan, feature_key)
    if dimension is not None and layout.feature.dimension is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"feature {feature_key[:100]!r} has no dimension in plan {plan_id!r}: check it without dimension",
        )
    micros = to_micros(query.amount)
    services = services_of(request)
    now = services.clock()
    matching = layout.matching(dimension)
    readings = await read_windows(
        services.period_usage, user_id, matching.reads, now, catalog.assigned_at.get(user_id), reuse=True
    )
    figures = evaluate(
        layout, matching, readings, _grants(services, user_id, feature_key, now), plan.near_limit_ratio, now
    )
    refusing = [
        (limit.range, slot.slice)
        for limit, slot in zip(figures, matching.slots, strict=True)
        if limit.rule.window.kind == "rolling" and not limit.fits(micros)
    ]
    # Usage per minute is read only when a rolling limit refuses: when it frees up is then the answer.
    minutes = await read_minutes(services.period_usage, user_id, refusing) if refusing else None
    figures = with_frees(figures, matching, minutes, micros)
    answer = _check_answer(user_id, plan_id, plan, layout, dimension, micros, figures, readings)
    # Serialised here from plain values: they are checked already, so building the response
    # model (and FastAPI's validation of it) would only repeat the work; QuotaCheck documents it.
    return Response(to_json(answer), media_type="application/json")


def _check_answer(
    user_id: str,
    plan_id: str,
    plan: Plan,
    layout: FeatureLayout,
    dimension: str | None,
    micros: int,
    figures: list[LimitFigures],
    readings: Readings,
) -> dict[str, object]:
    """The fields of :class:`QuotaCheck`, in its order."""
    binding = binding_of(figures)
    freshness = readings.freshness
    answer: dict[str, object] = {
        "user_id": user_id,
        "plan_id": plan_id,
        "feature_key": layout.feature_key,
        "unit": layout.feature.unit,
        "dimension": dimension,
        "allowed": allows(figures, micros, plan.enforcement),
        "enforcement": plan.enforcement,
        "amount": from_micros(micros),
    }
    if binding is None:
        read = layout.matching(dimension).reads[0]
        used = readings.usage.get((read.window, read.slices[0]), 0)
        answer |= {"used": from_micros(used), "limit": None, "remaining": None, "near_limit": False}
        answer |= {"exceeded": False, "reset_at": readings.ranges[read.window].end, "binding": None, "limits": []}
    else:
        answer |= {
            "used": from_micros(binding.used),
            "limit": from_micros(binding.limit),
            "remaining": from_micros(binding.remaining),
            "near_limit": any(limit.near_limit for limit in figures),
            "exceeded": any(limit.exceeded for limit in figures),
            "reset_at": None if binding.range == LIFETIME else binding.range.end,
            "binding": binding_fields(binding),
            "limits": [limit_fields(limit) for limit in figures],
        }
    answer |= {"as_of": freshness.as_of, "stale": freshness.stale}
    return answer


@router.get("", response_model=QuotaListing, responses=error_responses(_AUTH))
async def list_quotas(user_id: TargetUser, plans: Plans, now: Clock, services: ServicesDep) -> QuotaListing:
    """Every metered feature of the user's plan: each limit's usage in its window, the binding one, how fresh."""
    plan_id, plan = plans.plan_for(user_id)
    items, freshness = await read_plan_quotas(
        services.period_usage,
        user_id,
        plan,
        plans.assigned_at.get(user_id),
        now,
        plan_grants(services, user_id, plan, now),
    )
    window = period_window(plan.period, now)
    return QuotaListing(
        user_id=user_id,
        plan=plan_summary(plan_id, plan),
        period_start=window.start,
        period_end=window.end,
        quotas=items,
        as_of=freshness.as_of,
        stale=freshness.stale,
    )


@router.get("/{feature_key}", response_model=FeatureQuota, responses=error_responses(_AUTH | _NOT_FOUND))
async def get_quota(
    feature_key: str, user_id: TargetUser, plans: Plans, now: Clock, services: ServicesDep
) -> FeatureQuota:
    """One feature's limits with their usage, the binding one and when it frees up, and how fresh it is."""
    plan_id, plan = plans.plan_for(user_id)
    _layout(plan_id, plan, feature_key)
    grants = {feature_key: _grants(services, user_id, feature_key, now)}
    items, freshness = await read_plan_quotas(
        services.period_usage, user_id, plan, plans.assigned_at.get(user_id), now, grants, [feature_key]
    )
    return FeatureQuota(
        user_id=user_id, plan_id=plan_id, **items[0].model_dump(), as_of=freshness.as_of, stale=freshness.stale
    )


def _layout(plan_id: str, plan: Plan, feature_key: str) -> FeatureLayout:
    layout = layout_of(plan, feature_key)
    if layout is None:
        known = ", ".join(plan.features) or "none"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"plan {plan_id!r} does not meter feature {feature_key[:100]!r}; its features: {known}",
        )
    return layout


def _grants(services: Services, user_id: str, feature_key: str, now: datetime) -> Sequence[Grant]:
    """The user's grants of the feature active at ``now`` (from memory)."""
    return services.grants.active(user_id, feature_key, now)


def plan_grants(services: Services, user_id: str, plan: Plan, now: datetime) -> dict[str, Sequence[Grant]]:
    """The user's active grants of every feature ``plan`` meters."""
    return {key: _grants(services, user_id, key, now) for key in plan.features}
