"""Response bodies of ``/analytics/usage``: bucketed usage series and span metadata breakdowns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AnalyticsPeriod", "BreakdownGroup", "Interval", "UsageBreakdown", "UsageBucket", "UsageReport"]

#: The current period an analytics request may name instead of an explicit range.
AnalyticsPeriod = Literal["today", "week", "month"]
#: The width of a usage bucket.
Interval = Literal["hour", "day"]


class UsageBucket(BaseModel):
    """Usage in one UTC hour or day (the edge buckets only their part inside the range), in the feature's unit."""

    start: datetime = Field(description="Start of the bucket (UTC), or of the range when that is later.")
    end: datetime = Field(description="End of the bucket (UTC, exclusive), or of the range when that is earlier.")
    day: date = Field(description="The UTC day the bucket starts on.")
    used: int | float


class UsageReport(BaseModel):
    """A user's usage of one feature over the current period or an explicit range, bucket by bucket."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "user-123",
                    "feature_key": "chat_messages",
                    "unit": "uses",
                    "period": "week",
                    "interval": "day",
                    "period_start": "2026-11-23T00:00:00Z",
                    "period_end": "2026-11-30T00:00:00Z",
                    "total": 17,
                    "series": [
                        {
                            "start": "2026-11-23T00:00:00Z",
                            "end": "2026-11-24T00:00:00Z",
                            "day": "2026-11-23",
                            "used": 5,
                        },
                        {
                            "start": "2026-11-24T00:00:00Z",
                            "end": "2026-11-25T00:00:00Z",
                            "day": "2026-11-24",
                            "used": 12,
                        },
                    ],
                }
            ]
        }
    )

    user_id: str
    feature_key: str
    unit: str = Field(default="uses", description="The unit of the amounts (the feature's in the user's plan).")
    period: AnalyticsPeriod | None = Field(description="The period asked for; null for an explicit from/to range.")
    interval: Interval
    period_start: datetime = Field(description="Start of the period or of the from/to range (UTC, inclusive).")
    period_end: datetime = Field(description="End of the period or of the from/to range (UTC, exclusive).")
    total: int | float = Field(description="Usage in the series: exactly the sum of its buckets.")
    series: list[UsageBucket] = Field(
        description="One bucket per hour or day, zeros included; for a period, up to the current bucket."
    )


class BreakdownGroup(BaseModel):
    """Sampled ``feature.use`` spans sharing one value of the breakdown attribute."""

    value: str | None = Field(description="The attribute's value; null for spans without it.")
    spans: int = Field(description="Sampled spans in the group (not a quota-exact use count).")
    prompt_tokens: int | float = Field(description="Sum of the spans' `prompt_tokens` (non-numbers count 0).")
    completion_tokens: int | float = Field(description="Sum of the spans' `completion_tokens`.")


class UsageBreakdown(BaseModel):
    """Usage metadata from sampled spans, grouped by one span attribute (e.g. `model`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "user-123",
                    "feature_key": "ai_content_generation",
                    "by": "model",
                    "period": "month",
                    "period_start": "2026-11-01T00:00:00Z",
                    "period_end": "2026-12-01T00:00:00Z",
                    "sampled": True,
                    "groups": [
                        {"value": "gpt-4o", "spans": 31, "prompt_tokens": 40210, "completion_tokens": 9120},
                        {"value": "gpt-4o-mini", "spans": 11, "prompt_tokens": 8300, "completion_tokens": 2210},
                    ],
                    "truncated": False,
                }
            ]
        }
    )

    user_id: str
    feature_key: str
    by: str = Field(description="The span attribute the groups are keyed by.")
    period: AnalyticsPeriod | None
    period_start: datetime
    period_end: datetime
    sampled: bool = Field(
        default=True, description="Always true: spans may be sampled, so these counts are not quota-exact."
    )
    groups: list[BreakdownGroup] = Field(description="Most spans first.")
    truncated: bool = Field(description="More groups exist than `limit` returned.")
