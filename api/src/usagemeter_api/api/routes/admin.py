"""``/admin``: plans, per-feature limits, user -> plan assignments and users near their limits (role admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import ValidationError

from usagemeter_api.api.deps import Admin, ClickHouse, Clock, Plans, Store
from usagemeter_api.api.routes._adjustments import AUTH, require_allowed_dimensions
from usagemeter_api.domain.near_limit import near_limit_users
from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_api.schemas.admin import (
    Assignment,
    AssignmentBody,
    NearLimitUsers,
    PlanBody,
    PlanCreateBody,
    PlanInfo,
    PlanList,
)
from usagemeter_api.schemas.errors import error_responses
from usagemeter_clickhouse import Client

router = APIRouter(prefix="/admin", tags=["admin"])

_NOT_FOUND: dict[int, str] = {status.HTTP_404_NOT_FOUND: "No such plan."}
_CONFLICT: dict[int, str] = {
    status.HTTP_409_CONFLICT: "The plan exists already, or the change would leave no default plan."
}
_DIMENSION: dict[int, str] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid body, or a feature's dimension is not on the allow-list."
}
PathPlanId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PathUserId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("/plans", response_model=PlanList, responses=error_responses(AUTH))
def list_plans(_: Admin, plans: Plans) -> PlanList:
    """Every plan with its limits, and which one unassigned users get."""
    return _plan_list(plans)


@router.post(
    "/plans",
    response_model=PlanInfo,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(AUTH | _CONFLICT | _DIMENSION),
)
def create_plan(_: Admin, body: PlanCreateBody, store: Store, client: ClickHouse) -> PlanInfo:
    """Create a plan; it is usable at once."""
    catalog = store.create_plan(client, body.id, _plan_of(body, client), default=bool(body.default))
    return _plan_info(catalog, body.id)


@router.put(
    "/plans/{plan_id}", response_model=PlanInfo, responses=error_responses(AUTH | _NOT_FOUND | _CONFLICT | _DIMENSION)
)
def update_plan(_: Admin, plan_id: PathPlanId, body: PlanBody, store: Store, client: ClickHouse) -> PlanInfo:
    """Replace a plan's name, period, threshold, enforcement and limits; users on it see the change at once.

    Usage is counted per user, not per plan, so ``used`` stays exact across the change.
    """
    catalog = store.update_plan(client, plan_id, _plan_of(body, client), default=body.default)
    return _plan_info(catalog, plan_id)


@router.put("/users/{user_id}/plan", response_model=Assignment, responses=error_responses(AUTH | _NOT_FOUND))
def assign_plan(_: Admin, user_id: PathUserId, body: AssignmentBody, store: Store, client: ClickHouse) -> Assignment:
    """Put a user on a plan from now on."""
    store.assign(client, user_id, body.plan_id)
    return Assignment(user_id=user_id, plan_id=body.plan_id)


@router.get("/users/{user_id}/plan", response_model=Assignment, responses=error_responses(AUTH))
def get_assignment(_: Admin, user_id: PathUserId, plans: Plans) -> Assignment:
    """The plan a user is on (the default plan when unassigned)."""
    return Assignment(user_id=user_id, plan_id=plans.plan_for(user_id)[0])


@router.get("/users/near-limit", response_model=NearLimitUsers, responses=error_responses(AUTH))
def users_near_limit(
    _: Admin,
    plans: Plans,
    client: ClickHouse,
    now: Clock,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many entries.")] = 100,
) -> NearLimitUsers:
    """Users at or past their plan's near-limit threshold of a feature in the current period, highest share first."""
    found = near_limit_users(client, plans, now)
    return NearLimitUsers(users=found[:limit], truncated=len(found) > limit)


def _plan_list(catalog: PlanCatalog) -> PlanList:
    return PlanList(default_plan=catalog.default_plan, plans=[_plan_info(catalog, pid) for pid in catalog.plans])


def _plan_info(catalog: PlanCatalog, plan_id: str) -> PlanInfo:
    plan = catalog.plans[plan_id]
    return PlanInfo(
        id=plan_id,
        default=plan_id == catalog.default_plan,
        limits=plan.shorthand_limits(),
        **plan.model_dump(mode="json"),
    )


def _plan_of(body: PlanBody, client: Client) -> Plan:
    """The plan a request body describes; 422 when a feature's dimension is not on the allow-list."""
    try:
        plan = Plan.model_validate(body.model_dump(exclude={"default", "id"}))
    except ValidationError as exc:
        # What the body's own schema cannot see: a key in both limits and features, a shorthand limit's decimals.
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors) from exc
    named = {f"features.{key}.dimension": feature.dimension for key, feature in plan.features.items()}
    require_allowed_dimensions(client, {field: name for field, name in named.items() if name is not None})
    return plan
