"""Turning a usage total and a plan limit into quota figures and the allow decision, and how fresh that total is."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.plans import Enforcement, Plan
from usagemeter_api.domain.usage.queries import as_number
from usagemeter_api.schemas.quotas import PlanSummary, QuotaItem

__all__ = ["Freshness", "QuotaFigures", "allows", "evaluate_quota", "plan_quotas", "plan_summary", "quota_figures"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """When usage figures were last known good from ClickHouse, and whether they are behind it.

    ``behind`` says the latest attempt to bring them up to date failed. A source kept
    current in the background also sets ``fresh_for``: figures older than that are stale
    even without a failure, so a refresh stuck on a query that never returns is not
    taken for progress.
    """

    as_of: datetime
    known_at: float
    fresh_for: float | None = None
    behind: bool = False

    @classmethod
    def now(cls, fresh_for: float | None = None) -> Freshness:
        """Figures read from ClickHouse at this moment."""
        return cls(datetime.now(UTC), time.monotonic(), fresh_for)

    def age(self) -> float:
        """Seconds since the figures were known good."""
        return max(time.monotonic() - self.known_at, 0.0)

    @property
    def stale(self) -> bool:
        """Whether the figures are (or may be) behind ClickHouse's."""
        return self.behind or (self.fresh_for is not None and self.age() > self.fresh_for)

    def falling_behind(self) -> Freshness:
        """The same figures once an attempt to update them failed."""
        return Freshness(self.as_of, self.known_at, self.fresh_for, behind=True)

    def oldest(self, other: Freshness) -> Freshness:
        """The freshness of an answer built from both figures."""
        older = self if self.known_at <= other.known_at else other
        return Freshness(older.as_of, older.known_at, older.fresh_for, behind=self.behind or other.behind)


@dataclass(frozen=True, slots=True)
class QuotaFigures:
    """``used`` uses against a limit: what remains and whether it is near, over or still open."""

    used: int | float
    remaining: int | float | None
    percent_used: float | None
    near_limit: bool
    exceeded: bool
    has_access: bool


def quota_figures(used: float, limit: int | None, near_limit_ratio: float) -> QuotaFigures:
    """The figures of ``used`` uses against ``limit`` (None = unlimited)."""
    if limit is None:
        return QuotaFigures(as_number(used), None, None, near_limit=False, exceeded=False, has_access=True)
    return QuotaFigures(
        used=as_number(used),
        remaining=as_number(max(limit - used, 0.0)),
        percent_used=_percent(used, limit),
        near_limit=_near(used, limit, near_limit_ratio),
        exceeded=used > limit,
        has_access=used < limit,
    )


def allows(used: float, amount: int, limit: int | None, enforcement: Enforcement) -> bool:
    """Whether ``amount`` more uses may go ahead after ``used``: they fit within ``limit`` (None = unlimited),
    or the plan's enforcement is ``soft`` and only reports going past it."""
    return limit is None or used + amount <= limit or enforcement == "soft"


def evaluate_quota(
    feature_key: str, used: float, limit: int | None, near_limit_ratio: float, window: Window
) -> QuotaItem:
    """The quota of one feature: ``used`` uses against ``limit`` (None = unlimited) over ``window``."""
    figures = quota_figures(used, limit, near_limit_ratio)
    return QuotaItem(
        feature_key=feature_key,
        used=figures.used,
        limit=limit,
        remaining=figures.remaining,
        percent_used=figures.percent_used,
        near_limit=figures.near_limit,
        exceeded=figures.exceeded,
        has_access=figures.has_access,
        period_start=window.start,
        period_end=window.end,
    )


def plan_quotas(plan: Plan, used: Mapping[str, float], window: Window) -> list[QuotaItem]:
    """The quota of every feature ``plan`` meters, from ``used`` per feature key (0 for one not used)."""
    return [
        evaluate_quota(key, used.get(key, 0.0), limit, plan.near_limit_ratio, window)
        for key, limit in plan.limits.items()
    ]


def plan_summary(plan_id: str, plan: Plan) -> PlanSummary:
    """What a quota answer says of the plan it was computed for."""
    return PlanSummary(id=plan_id, name=plan.name, period=plan.period, near_limit_ratio=plan.near_limit_ratio)


def _percent(used: float, limit: int) -> float:
    # A zero limit means the plan allows none of it: fully used from the start.
    return round(used / limit * 100, 2) if limit else 100.0


def _near(used: float, limit: int | None, ratio: float) -> bool:
    # Decimal keeps the threshold exact: 0.8 * 50 is 40, not 40.000000000000004.
    return Decimal(str(used)) >= Decimal(str(ratio)) * (limit or 0)
