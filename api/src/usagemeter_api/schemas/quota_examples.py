"""Examples of the quota endpoints' answers, for their OpenAPI documentation."""

from __future__ import annotations

from pydantic.config import JsonDict

__all__ = [
    "CHECK_EXAMPLE",
    "DIMENSION_EXAMPLE",
    "FRESH_EXAMPLE",
    "MONTH_BINDING_EXAMPLE",
    "MONTH_LIMIT_EXAMPLE",
    "MONTH_LIMIT_FORECAST_EXAMPLE",
    "QUOTA_EXAMPLE",
    "QUOTA_LIST_EXAMPLE",
    "REFUSED_CHECK_EXAMPLE",
    "ROLLING_BINDING_EXAMPLE",
    "ROLLING_LIMIT_EXAMPLE",
    "ROLLING_LIMIT_FORECAST_EXAMPLE",
    "TOKENS_QUOTA_EXAMPLE",
]

#: How fresh the example answers are: read from ClickHouse a moment ago.
FRESH_EXAMPLE: JsonDict = {"as_of": "2026-11-20T09:30:00.250000Z", "stale": False}

MONTH_LIMIT_EXAMPLE: JsonDict = {
    "window": "month",
    "kind": "month",
    "dimension_value": None,
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "used": 42,
    "limit": 50,
    "granted": 0,
    "available": 50,
    "remaining": 8,
    "percent_used": 84.0,
    "near_limit": True,
    "exceeded": False,
    "frees_at": "2026-12-01T00:00:00Z",
    "grant_expires_at": None,
}
#: The listing's forecast of the month limit at 09:30 on the 20th: 42 in 19.4 days heads for 65, past 50 on the 24th.
_MONTH_FORECAST: JsonDict = {"projected_used": 64.962406, "projected_exhausted_at": "2026-11-24T02:10:00Z"}
MONTH_LIMIT_FORECAST_EXAMPLE: JsonDict = {**MONTH_LIMIT_EXAMPLE, **_MONTH_FORECAST}
#: Rolling and lifetime windows have no end to project to.
_NO_FORECAST: JsonDict = {"projected_used": None, "projected_exhausted_at": None}
MONTH_BINDING_EXAMPLE: JsonDict = {
    "window": "month",
    "kind": "month",
    "dimension_value": None,
    "frees_at": "2026-12-01T00:00:00Z",
    "grant_expires_at": None,
}

QUOTA_EXAMPLE: JsonDict = {
    "feature_key": "ai_content_generation",
    "unit": "uses",
    "dimension": None,
    "used": 42,
    "limit": 50,
    "remaining": 8,
    "percent_used": 84.0,
    "near_limit": True,
    "exceeded": False,
    "has_access": True,
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    **_MONTH_FORECAST,
    "binding": MONTH_BINDING_EXAMPLE,
    "limits": [MONTH_LIMIT_FORECAST_EXAMPLE],
    "dimensions": [],
}

ROLLING_LIMIT_EXAMPLE: JsonDict = {
    "window": "5h",
    "kind": "rolling",
    "dimension_value": None,
    "period_start": "2026-11-20T04:31:00Z",
    "period_end": "2026-11-20T09:31:00Z",
    "used": 990000.5,
    "limit": 1000000,
    "granted": 0,
    "available": 1000000,
    "remaining": 9999.5,
    "percent_used": 99.0,
    "near_limit": True,
    "exceeded": False,
    "frees_at": "2026-11-20T09:47:00Z",
    "grant_expires_at": None,
}
ROLLING_LIMIT_FORECAST_EXAMPLE: JsonDict = {**ROLLING_LIMIT_EXAMPLE, **_NO_FORECAST}
_WEEK_LIMIT_EXAMPLE: JsonDict = {
    **ROLLING_LIMIT_EXAMPLE,
    "window": "7d",
    "period_start": "2026-11-13T09:31:00Z",
    "used": 4200000,
    "limit": 10000000,
    "available": 10000000,
    "remaining": 5800000,
    "percent_used": 42.0,
    "near_limit": False,
    "frees_at": "2026-11-20T10:02:00Z",
}
_GPT4O_LIMIT_EXAMPLE: JsonDict = {
    "window": "month",
    "kind": "month",
    "dimension_value": "gpt-4o",
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "used": 180000,
    "limit": 200000,
    "granted": 50000,
    "available": 250000,
    "remaining": 70000,
    "percent_used": 72.0,
    "near_limit": False,
    "exceeded": False,
    "frees_at": "2026-12-01T00:00:00Z",
    "grant_expires_at": "2026-11-25T00:00:00Z",
}
#: 180000 of 250000 in 19.4 days heads for 278410.3, past 250000 on the 27th.
_GPT4O_FORECAST: JsonDict = {"projected_used": 278410.311493, "projected_exhausted_at": "2026-11-27T22:31:40Z"}
ROLLING_BINDING_EXAMPLE: JsonDict = {
    "window": "5h",
    "kind": "rolling",
    "dimension_value": None,
    "frees_at": "2026-11-20T09:47:00Z",
    "grant_expires_at": None,
}
DIMENSION_EXAMPLE: JsonDict = {
    "dimension_value": "gpt-4o",
    "used": 180000,
    "limit": 200000,
    "remaining": 70000,
    "percent_used": 72.0,
    "near_limit": False,
    "exceeded": False,
    "has_access": True,
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    **_GPT4O_FORECAST,
    "binding": {
        **MONTH_BINDING_EXAMPLE,
        "dimension_value": "gpt-4o",
        "grant_expires_at": "2026-11-25T00:00:00Z",
    },
    "limits": [{**_GPT4O_LIMIT_EXAMPLE, **_GPT4O_FORECAST}],
}
#: A feature in tokens with a 5h window beside a 7d one, and a monthly limit of one model.
TOKENS_QUOTA_EXAMPLE: JsonDict = {
    "feature_key": "ai_tokens",
    "unit": "tokens",
    "dimension": "model",
    "used": 990000.5,
    "limit": 1000000,
    "remaining": 9999.5,
    "percent_used": 99.0,
    "near_limit": True,
    "exceeded": False,
    "has_access": True,
    "period_start": "2026-11-20T04:31:00Z",
    "period_end": "2026-11-20T09:31:00Z",
    **_NO_FORECAST,
    "binding": ROLLING_BINDING_EXAMPLE,
    "limits": [ROLLING_LIMIT_FORECAST_EXAMPLE, {**_WEEK_LIMIT_EXAMPLE, **_NO_FORECAST}],
    "dimensions": [DIMENSION_EXAMPLE],
}


QUOTA_LIST_EXAMPLE: JsonDict = {
    "user_id": "user-123",
    "plan": {"id": "free", "name": "Free", "period": "month", "near_limit_ratio": 0.8},
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "quotas": [QUOTA_EXAMPLE, TOKENS_QUOTA_EXAMPLE],
}


CHECK_EXAMPLE: JsonDict = {
    "user_id": "user-123",
    "plan_id": "free",
    "feature_key": "ai_content_generation",
    "unit": "uses",
    "dimension": None,
    "allowed": True,
    "enforcement": "hard",
    "amount": 1,
    "used": 42,
    "limit": 50,
    "remaining": 8,
    "near_limit": True,
    "exceeded": False,
    "reset_at": "2026-12-01T00:00:00Z",
    "binding": MONTH_BINDING_EXAMPLE,
    "limits": [MONTH_LIMIT_EXAMPLE],
    **FRESH_EXAMPLE,
}
REFUSED_CHECK_EXAMPLE: JsonDict = {
    **CHECK_EXAMPLE,
    "feature_key": "ai_tokens",
    "unit": "tokens",
    "dimension": "gpt-4o",
    "allowed": False,
    "amount": 12000.5,
    "used": 990000.5,
    "limit": 1000000,
    "remaining": 9999.5,
    "reset_at": "2026-11-20T09:31:00Z",
    "binding": ROLLING_BINDING_EXAMPLE,
    "limits": [ROLLING_LIMIT_EXAMPLE, _WEEK_LIMIT_EXAMPLE, _GPT4O_LIMIT_EXAMPLE],
}
