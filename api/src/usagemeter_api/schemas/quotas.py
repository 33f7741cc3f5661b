"""Response bodies of the quota endpoints: a user's usage against their plan's limits, and the quota check."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

__all__ = [
    "QUOTA_EXAMPLE",
    "QUOTA_LIST_EXAMPLE",
    "FeatureQuota",
    "PlanSummary",
    "QuotaCheck",
    "QuotaItem",
    "QuotaList",
    "QuotaListing",
]

#: How fresh the example answers are: read from ClickHouse a moment ago.
_FRESH_EXAMPLE: JsonDict = {"as_of": "2026-11-20T09:30:00.250000Z", "stale": False}

QUOTA_EXAMPLE: JsonDict = {
    "feature_key": "ai_content_generation",
    "used": 42,
    "limit": 50,
    "remaining": 8,
    "percent_used": 84.0,
    "near_limit": True,
    "exceeded": False,
    "has_access": True,
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
}


class QuotaItem(BaseModel):
    """A user's usage of one feature against the plan's limit in the current period."""

    model_config = ConfigDict(json_schema_extra={"examples": [QUOTA_EXAMPLE]})

    feature_key: str
    used: int | float = Field(description="Uses counted in the period.")
    limit: int | None = Field(description="Uses allowed per period; null means unlimited.")
    remaining: int | float | None = Field(description="Uses left (never negative); null when unlimited.")
    percent_used: float | None = Field(description="used / limit * 100, two decimals; null when unlimited.")
    near_limit: bool = Field(description="used has reached the plan's near_limit_ratio of the limit.")
    exceeded: bool = Field(description="used is above the limit.")
    has_access: bool = Field(description="Another use fits in the limit (used < limit, or unlimited).")
    period_start: datetime = Field(description="Start of the period, inclusive (UTC).")
    period_end: datetime = Field(description="End of the period, exclusive (UTC).")


#: When the usage figures were last known good from ClickHouse.
AsOf = Annotated[
    datetime, Field(description="When the usage figures were last known good from ClickHouse (RFC 3339, UTC).")
]
#: Whether the usage figures may be behind ClickHouse's.
Stale = Annotated[
    bool,
    Field(
        description=(
            "True when the figures may be behind ClickHouse's: it cannot be read (or has stopped answering) and the"
            " answer comes from the usage the API holds. Stale answers are given for at most"
            " USAGEMETER_QUOTA_MAX_STALENESS_SECONDS after as_of, then 503."
        )
    ),
]


class FeatureQuota(QuotaItem):
    """One feature's quota, with whose it is and how fresh it is."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "user-123", "plan_id": "free", **QUOTA_EXAMPLE, **_FRESH_EXAMPLE}]}
    )

    user_id: str
    plan_id: str
    as_of: AsOf
    stale: Stale


class PlanSummary(BaseModel):
    """The plan a user is on."""

    id: str
    name: str
    period: Literal["day", "week", "month"]
    near_limit_ratio: float


QUOTA_LIST_EXAMPLE: JsonDict = {
    "user_id": "user-123",
    "plan": {"id": "free", "name": "Free", "period": "month", "near_limit_ratio": 0.8},
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "quotas": [QUOTA_EXAMPLE],
}


class QuotaList(BaseModel):
    """Every metered feature of a user's plan."""

    model_config = ConfigDict(json_schema_extra={"examples": [QUOTA_LIST_EXAMPLE]})

    user_id: str
    plan: PlanSummary
    period_start: datetime
    period_end: datetime
    quotas: list[QuotaItem]


class QuotaListing(QuotaList):
    """Every metered feature of a user's plan, and how fresh the usage figures are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**QUOTA_LIST_EXAMPLE, **_FRESH_EXAMPLE}]})

    as_of: AsOf
    stale: Stale


class QuotaCheck(BaseModel):
    """Whether a host may perform ``amount`` more metered uses now."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "user-123",
                    "plan_id": "free",
                    "feature_key": "ai_content_generation",
                    "allowed": True,
                    "enforcement": "hard",
                    "amount": 1,
                    "used": 42,
                    "limit": 50,
                    "remaining": 8,
                    "near_limit": True,
                    "exceeded": False,
                    "reset_at": "2026-12-01T00:00:00Z",
                    **_FRESH_EXAMPLE,
                }
            ]
        }
    )

    user_id: str
    plan_id: str
    feature_key: str
    allowed: bool = Field(description="hard: used + amount fits in the limit; soft: always true.")
    enforcement: Literal["hard", "soft"]
    amount: int
    used: int | float
    limit: int | None
    remaining: int | float | None = Field(description="Uses left before this one; null when unlimited.")
    near_limit: bool
    exceeded: bool = Field(description="used is already above the limit.")
    reset_at: datetime = Field(description="When the period ends and usage starts again from zero (UTC).")
    as_of: AsOf
    stale: Stale
