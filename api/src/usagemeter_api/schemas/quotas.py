"""Response bodies of the quota endpoints: a user's usage against their plan's limits, and the quota check.

Every amount is a number in the feature's ``unit`` (exact to 6 decimals: an int when whole).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from usagemeter_api.schemas.quota_examples import (
    CHECK_EXAMPLE,
    DIMENSION_EXAMPLE,
    FRESH_EXAMPLE,
    MONTH_BINDING_EXAMPLE,
    MONTH_LIMIT_EXAMPLE,
    MONTH_LIMIT_FORECAST_EXAMPLE,
    QUOTA_EXAMPLE,
    QUOTA_LIST_EXAMPLE,
    REFUSED_CHECK_EXAMPLE,
    ROLLING_BINDING_EXAMPLE,
    ROLLING_LIMIT_EXAMPLE,
    ROLLING_LIMIT_FORECAST_EXAMPLE,
    TOKENS_QUOTA_EXAMPLE,
)

__all__ = [
    "QUOTA_EXAMPLE",
    "QUOTA_LIST_EXAMPLE",
    "Binding",
    "CheckLimit",
    "DimensionQuota",
    "FeatureQuota",
    "LimitQuota",
    "PlanSummary",
    "QuotaCheck",
    "QuotaFigures",
    "QuotaItem",
    "QuotaList",
    "QuotaListing",
]

#: A quantity in the feature's unit: an int when whole, else a float (at most 6 decimals).
Number = int | float
#: How a limit's window is measured (the spelling of ``window`` tells its length).
Kind = Literal["day", "week", "month", "cycle", "lifetime", "rolling"]


#: The usage projected at the end of a window, from its average rate so far.
ProjectedUsed = Annotated[
    Number | None,
    Field(
        description=(
            "The usage projected at period_end if it goes on at the window's average rate so far: used + rate *"
            " (period_end - now), rate = used / max(elapsed, a tenth of the window), so a burst in a period that just"
            " started projects to at most 11 times used (docs/metering.md, Forecasts). null for lifetime and rolling"
            " windows."
        )
    ),
]
#: When that projection reaches what is available.
ProjectedExhaustedAt = Annotated[
    datetime | None,
    Field(
        description=(
            "When the projection reaches available (UTC): the current moment when used has reached it already;"
            " null when the projection stays at or under available, without a limit, and for lifetime and rolling"
            " windows."
        )
    ),
]


class CheckLimit(BaseModel):
    """One limit of a feature at this moment, as the check answers it: range, usage, allowance, when it frees up."""

    model_config = ConfigDict(json_schema_extra={"examples": [MONTH_LIMIT_EXAMPLE, ROLLING_LIMIT_EXAMPLE]})

    window: str = Field(description="The window as the plan writes it: day, week, month, cycle, lifetime, 5h, 7d, ...")
    kind: Kind
    dimension_value: str | None = Field(description="The dimension value the limit is of; null for the feature total.")
    period_start: datetime = Field(description="Start of the window's current range, inclusive (UTC).")
    period_end: datetime = Field(description="End of the window's current range, exclusive (UTC).")
    used: Number = Field(description="Usage counted in the range, in the feature's unit.")
    limit: Number = Field(description="What the plan allows per window.")
    granted: Number = Field(description="Active grants matching this limit.")
    available: Number = Field(description="limit + granted.")
    remaining: Number = Field(description="available - used, never negative.")
    percent_used: float = Field(description="used / available * 100, two decimals (100 when nothing is available).")
    near_limit: bool = Field(description="used has reached the plan's near_limit_ratio of available.")
    exceeded: bool = Field(description="used is above available.")
    frees_at: datetime | None = Field(
        description=(
            "When the checked amount (in a listing: more usage) fits again: the end of a calendar window or cycle;"
            " for a rolling window, the first minute enough of its usage has left it, assuming no new usage"
            " (in a check, worked out only when the amount does not fit); null for lifetime, when the amount is"
            " above what is available, when a rolling window holds no usage, or not worked out."
        )
    )
    grant_expires_at: datetime | None = Field(
        description="The earliest expiry of the grants counted in available: from then on it is smaller."
    )


class LimitQuota(CheckLimit):
    """One limit of a feature at this moment, and where its usage is heading by the window's end."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [MONTH_LIMIT_FORECAST_EXAMPLE, ROLLING_LIMIT_FORECAST_EXAMPLE]}
    )

    projected_used: ProjectedUsed
    projected_exhausted_at: ProjectedExhaustedAt


class Binding(BaseModel):
    """The limit with the least remaining (ties: the one that frees up first): the one a use runs into."""

    model_config = ConfigDict(json_schema_extra={"examples": [MONTH_BINDING_EXAMPLE, ROLLING_BINDING_EXAMPLE]})

    window: str
    kind: Kind
    dimension_value: str | None
    frees_at: datetime | None = Field(description="As the limit's frees_at.")
    grant_expires_at: datetime | None = Field(
        description="Set when a grant counted in this limit expires before frees_at (or frees_at is null)."
    )


class QuotaFigures(BaseModel):
    """Usage against a group of limits: the binding limit's figures, and every limit's."""

    used: Number = Field(description="Usage in the binding limit's range (the plan's period when unlimited).")
    limit: Number | None = Field(description="The binding limit; null means unlimited.")
    remaining: Number | None = Field(description="What the binding limit leaves (never negative); null when unlimited.")
    percent_used: float | None = Field(description="The binding limit's used / available * 100; null when unlimited.")
    near_limit: bool = Field(description="Some limit has reached the plan's near_limit_ratio of what it allows.")
    exceeded: bool = Field(description="Some limit is exceeded.")
    has_access: bool = Field(description="Another use fits in every limit (or unlimited).")
    period_start: datetime = Field(description="Start of the binding limit's range, inclusive (UTC).")
    period_end: datetime = Field(description="End of the binding limit's range, exclusive (UTC).")
    projected_used: Number | None = Field(
        description=(
            "The binding limit's projected_used: its usage projected at period_end at its window's average rate so"
            " far; for an unlimited feature, used projected over the plan's period; null for lifetime and rolling."
        )
    )
    projected_exhausted_at: datetime | None = Field(
        description="The binding limit's projected_exhausted_at (UTC); null when unlimited."
    )
    binding: Binding | None = Field(default=None, description="The binding limit; null when unlimited.")
    limits: list[LimitQuota] = Field(default_factory=list, description="Every limit with its figures.")


class DimensionQuota(QuotaFigures):
    """The limits of one value of the feature's dimension attribute (e.g. model gpt-4o)."""

    model_config = ConfigDict(json_schema_extra={"examples": [DIMENSION_EXAMPLE]})

    dimension_value: str


class QuotaItem(QuotaFigures):
    """A user's usage of one feature against the plan's feature-total limits, and per limited dimension value."""

    model_config = ConfigDict(json_schema_extra={"examples": [QUOTA_EXAMPLE, TOKENS_QUOTA_EXAMPLE]})

    feature_key: str
    unit: str = Field(default="uses", description="The unit of every amount of the feature.")
    dimension: str | None = Field(default=None, description="The usage attribute the dimension items are values of.")
    dimensions: list[DimensionQuota] = Field(
        default_factory=list, description="One item per dimension value the plan limits, with its own limits."
    )


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
        json_schema_extra={"examples": [{"user_id": "user-123", "plan_id": "free", **QUOTA_EXAMPLE, **FRESH_EXAMPLE}]}
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


class QuotaList(BaseModel):
    """Every metered feature of a user's plan."""

    model_config = ConfigDict(json_schema_extra={"examples": [QUOTA_LIST_EXAMPLE]})

    user_id: str
    plan: PlanSummary
    period_start: datetime = Field(description="Start of the plan's period (of its shorthand limits).")
    period_end: datetime
    quotas: list[QuotaItem]


class QuotaListing(QuotaList):
    """Every metered feature of a user's plan, and how fresh the usage figures are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**QUOTA_LIST_EXAMPLE, **FRESH_EXAMPLE}]})

    as_of: AsOf
    stale: Stale


class QuotaCheck(BaseModel):
    """Whether a host may use ``amount`` more of a feature now, and which limit decides it."""

    model_config = ConfigDict(json_schema_extra={"examples": [CHECK_EXAMPLE, REFUSED_CHECK_EXAMPLE]})

    user_id: str
    plan_id: str
    feature_key: str
    unit: str = Field(description="The unit of every amount of the feature.")
    dimension: str | None = Field(description="The dimension value checked; null for the feature total only.")
    allowed: bool = Field(description="hard: amount fits in every matching limit; soft: always true.")
    enforcement: Literal["hard", "soft"]
    amount: Number
    used: Number = Field(description="Usage in the binding limit's range (the plan's period when unlimited).")
    limit: Number | None = Field(description="The binding limit; null when unlimited.")
    remaining: Number | None = Field(description="What the binding limit leaves before this use; null when unlimited.")
    near_limit: bool = Field(description="Some matching limit has reached the plan's near_limit_ratio.")
    exceeded: bool = Field(description="Some matching limit is already exceeded.")
    reset_at: datetime | None = Field(
        description=(
            "When the binding limit's current range ends (for a rolling window, the current minute's end; the"
            " plan's period when unlimited); null for lifetime. binding.frees_at tells when the amount fits."
        )
    )
    binding: Binding | None = Field(description="The binding limit and when it frees up; null when unlimited.")
    limits: list[CheckLimit] = Field(
        description=(
            "Every matching limit: the feature total's and the dimension value's (without the listing's forecasts,"
            " which the check leaves out)."
        )
    )
    as_of: AsOf
    stale: Stale
