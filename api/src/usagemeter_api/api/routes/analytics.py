"""``/analytics/usage``: a user's bucketed usage of a feature, and its span metadata breakdown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from usagemeter_api.api.deps import AskedRange, ClickHouse, Plans, TargetUser
from usagemeter_api.domain.plans import PlanCatalog
from usagemeter_api.domain.ranges import buckets
from usagemeter_api.domain.usage.breakdown import span_breakdown
from usagemeter_api.domain.usage.queries import as_number, usage_series
from usagemeter_api.quantity import from_micros
from usagemeter_api.schemas.analytics import BreakdownGroup, UsageBreakdown, UsageBucket, UsageReport
from usagemeter_api.schemas.errors import error_responses

router = APIRouter(prefix="/analytics", tags=["analytics"])

_RESPONSES: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "Missing, expired or invalid bearer token.",
    status.HTTP_403_FORBIDDEN: "A non-admin asked for another user's usage.",
    status.HTTP_404_NOT_FOUND: "No plan meters this feature.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Bad period, range or interval.",
}
ByAttribute = Annotated[
    str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="Span attribute to group by.")
]


@router.get("/usage/{feature_key}", response_model=UsageReport, responses=error_responses(_RESPONSES))
def feature_usage(
    feature_key: str, user_id: TargetUser, plans: Plans, client: ClickHouse, asked: AskedRange
) -> UsageReport:
    """Usage of one feature per UTC hour or day, over the current period (up to now) or a ``from``/``to`` range.

    Exact: read from the usage rollups in the feature's ``unit``; ``total`` is the sum of the series.
    """
    _require_metered(plans, feature_key)
    per_bucket = usage_series(client, user_id, feature_key, asked.window, asked.interval)
    spans = buckets(asked.window, asked.interval)
    series = [
        UsageBucket(start=part.start, end=part.end, day=part.start.date(), used=from_micros(per_bucket.get(start, 0)))
        for start, part in spans
    ]
    return UsageReport(
        user_id=user_id,
        feature_key=feature_key,
        unit=_unit(plans, user_id, feature_key),
        period=asked.period,
        interval=asked.interval,
        period_start=asked.reported.start,
        period_end=asked.reported.end,
        total=from_micros(sum(per_bucket.get(start, 0) for start, _ in spans)),
        series=series,
    )


@router.get("/usage/{feature_key}/breakdown", response_model=UsageBreakdown, responses=error_responses(_RESPONSES))
def feature_usage_breakdown(
    feature_key: str,
    user_id: TargetUser,
    plans: Plans,
    client: ClickHouse,
    asked: AskedRange,
    by: ByAttribute = "model",
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many groups.")] = 100,
) -> UsageBreakdown:
    """Sampled ``feature.use`` spans grouped by a metadata attribute, with their token sums.

    Spans can be sampled, so the counts describe usage but are not quota-exact; use
    ``/analytics/usage`` or ``/quotas`` for exact counts. ``interval`` is ignored here.
    """
    _require_metered(plans, feature_key)
    groups = span_breakdown(client, user_id, feature_key, by, asked.window, limit + 1)
    return UsageBreakdown(
        user_id=user_id,
        feature_key=feature_key,
        by=by,
        period=asked.period,
        period_start=asked.reported.start,
        period_end=asked.reported.end,
        groups=[
            BreakdownGroup(
                value=group.value or None,
                spans=group.spans,
                prompt_tokens=as_number(group.prompt_tokens),
                completion_tokens=as_number(group.completion_tokens),
            )
            for group in groups[:limit]
        ],
        truncated=len(groups) > limit,
    )


def _unit(plans: PlanCatalog, user_id: str, feature_key: str) -> str:
    """The feature's unit in the user's plan, else in the first plan that meters it."""
    feature = plans.plan_for(user_id)[1].feature(feature_key)
    if feature is None:
        feature = next(plan.features[feature_key] for plan in plans.plans.values() if feature_key in plan.features)
    return feature.unit


def _require_metered(plans: PlanCatalog, feature_key: str) -> None:
    known = plans.feature_keys()
    if feature_key not in known:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"unknown feature {feature_key[:100]!r}; known features: {', '.join(known) or 'none'}",
        )
