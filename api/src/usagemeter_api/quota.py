"""Turning a usage total and a plan limit into a quota item."""

from __future__ import annotations

from decimal import Decimal

from usagemeter_api.periods import Window
from usagemeter_api.schemas import QuotaItem
from usagemeter_api.usage import as_number

__all__ = ["evaluate_quota"]


def evaluate_quota(
    feature_key: str, used: float, limit: int | None, near_limit_ratio: float, window: Window
) -> QuotaItem:
    """The quota of one feature: ``used`` uses against ``limit`` (None = unlimited) over ``window``."""
    unlimited = limit is None
    return QuotaItem(
        feature_key=feature_key,
        used=as_number(used),
        limit=limit,
        remaining=None if limit is None else as_number(max(limit - used, 0.0)),
        percent_used=None if limit is None else _percent(used, limit),
        near_limit=not unlimited and _near(used, limit, near_limit_ratio),
        exceeded=not unlimited and used > (limit or 0),
        has_access=unlimited or used < (limit or 0),
        period_start=window.start,
        period_end=window.end,
    )


def _percent(used: float, limit: int) -> float:
    # A zero limit means the plan allows none of it: fully used from the start.
    return round(used / limit * 100, 2) if limit else 100.0


def _near(used: float, limit: int | None, ratio: float) -> bool:
    # Decimal keeps the threshold exact: 0.8 * 50 is 40, not 40.000000000000004.
    return Decimal(str(used)) >= Decimal(str(ratio)) * (limit or 0)
