"""Request and response bodies of the admin endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from usagemeter_api.schemas.plans import FEATURE_PLAN_EXAMPLE, Amount, FeaturePlan, PeriodKind

__all__ = [
    "Assignment",
    "AssignmentBody",
    "Enforcement",
    "NearLimitUser",
    "NearLimitUsers",
    "PeriodKind",
    "PlanBody",
    "PlanCreateBody",
    "PlanInfo",
    "PlanList",
]

#: ``hard``: a use past the limit is refused; ``soft``: it is allowed and reported as exceeded.
Enforcement = Literal["hard", "soft"]

_PLAN_EXAMPLE: JsonDict = {
    "name": "Team",
    "period": "month",
    "near_limit_ratio": 0.8,
    "enforcement": "hard",
    "limits": {"ai_content_generation": 500, "chat_messages": None},
    "features": {"ai_tokens": FEATURE_PLAN_EXAMPLE},
}
_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"

PlanId = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
FeatureKey = Annotated[str, Field(min_length=1, max_length=128)]


class PlanBody(BaseModel):
    """A plan's definition: limits per feature over a UTC period."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PLAN_EXAMPLE]})

    name: str = Field(min_length=1, max_length=200)
    period: PeriodKind = "month"
    near_limit_ratio: float = Field(default=0.8, gt=0, le=1, description="Share of a limit that is near_limit.")
    enforcement: Enforcement = Field(
        default="hard", description="hard: a use past the limit is refused; soft: allowed and reported as exceeded."
    )
    limits: dict[FeatureKey, Amount | None] = Field(
        default_factory=dict,
        description="Shorthand: feature key -> uses allowed per period (at most 6 decimals); null means unlimited.",
    )
    features: dict[FeatureKey, FeaturePlan] = Field(
        default_factory=dict,
        description="Feature key -> its unit, dimension attribute and limits over windows (see docs/metering.md).",
    )
    default: bool | None = Field(default=None, description="Make this the plan of unassigned users.")


class PlanCreateBody(PlanBody):
    """A new plan with its id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "team", **_PLAN_EXAMPLE}]})

    id: PlanId


class PlanInfo(BaseModel):
    """A stored plan."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "team", "default": False, **_PLAN_EXAMPLE}]})

    id: str
    name: str
    period: PeriodKind
    near_limit_ratio: float
    enforcement: Enforcement
    limits: dict[str, int | float | None] = Field(
        description="The features whose only limit is uses per period, in the shorthand (null: unlimited)."
    )
    features: dict[str, FeaturePlan] = Field(description="Every metered feature in full.")
    default: bool


class PlanList(BaseModel):
    """Every plan."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"default_plan": "free", "plans": [{"id": "team", "default": False, **_PLAN_EXAMPLE}]}]
        }
    )

    default_plan: str
    plans: list[PlanInfo]


class AssignmentBody(BaseModel):
    """Which plan a user is on."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"plan_id": "pro"}]})

    plan_id: PlanId


class Assignment(BaseModel):
    """A user's plan."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "user-123", "plan_id": "pro"}]})

    user_id: str
    plan_id: str


class NearLimitUser(BaseModel):
    """A user at or past a plan's near-limit threshold of one feature."""

    user_id: str
    plan_id: str
    feature_key: str
    window: str = Field(description="The calendar window of the limit: day, week or month.")
    used: int | float
    limit: int | float
    percent_used: float
    exceeded: bool


class NearLimitUsers(BaseModel):
    """Users near or over their limits in their plan's current period, highest share first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "users": [
                        {
                            "user_id": "user-123",
                            "plan_id": "free",
                            "feature_key": "ai_content_generation",
                            "window": "month",
                            "used": 48,
                            "limit": 50,
                            "percent_used": 96.0,
                            "exceeded": False,
                        }
                    ],
                    "truncated": False,
                }
            ]
        }
    )

    users: list[NearLimitUser]
    truncated: bool = Field(description="More users matched than the requested limit.")
