"""A feature's limits evaluated at a moment: each limit's figures, the binding one, and how fresh the usage is.

Every figure is an ``int`` of micro-units (:mod:`usagemeter_api.quantity`); the answers turn them
into numbers in the feature's unit. These functions are pure: usage, grants and the moment come in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from usagemeter_api.domain.grants import Grant
from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.plans import Enforcement
from usagemeter_api.schemas.plans import LimitRule

__all__ = [
    "Freshness",
    "LimitFigures",
    "allows",
    "binding_of",
    "granted_for",
    "limit_figures",
]

#: Sorts after every real moment: the end of a limit that never frees up.
_NEVER = datetime.max.replace(tzinfo=UTC)


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
class LimitFigures:
    """One limit at a moment, in micro-units: ``used`` in ``range`` against ``limit`` raised by ``granted``.

    ``frees_at`` is when the window lets the checked amount in again (None: never, or not worked
    out); ``grant_expires_at`` the earliest expiry of the grants counted in ``granted``.
    """

    rule: LimitRule
    range: Window
    used: int
    limit: int
    granted: int
    near_limit_ratio: float
    frees_at: datetime | None = None
    grant_expires_at: datetime | None = None

    @property
    def available(self) -> int:
        """The limit with the active grants that match it."""
        return self.limit + self.granted

    @property
    def remaining(self) -> int:
        """What is left of ``available`` (never negative)."""
        return max(self.available - self.used, 0)

    @property
    def exceeded(self) -> bool:
        """Usage is above what is available."""
        return self.used > self.available

    @property
    def has_access(self) -> bool:
        """Another use fits."""
        return self.used < self.available

    @property
    def near_limit(self) -> bool:
        """Usage has reached the plan's near-limit share of what is available."""
        # As integers, the threshold is exact: 0.8 of 50 is 40, not 40.000000000000004.
        numerator, denominator = _ratio(self.near_limit_ratio)
        return self.used * denominator >= numerator * self.available

    @property
    def percent_used(self) -> float:
        """used / available * 100, two decimals; a zero allowance counts as fully used."""
        return round(self.used / self.available * 100, 2) if self.available else 100.0

    def fits(self, amount: int) -> bool:
        """Whether ``amount`` more fits in what remains."""
        return self.used + amount <= self.available

    def with_frees_at(self, frees_at: datetime | None) -> LimitFigures:
        """The same figures with when they free up."""
        return replace(self, frees_at=frees_at)


def granted_for(rule: LimitRule, feature_key: str, grants: Iterable[Grant], now: datetime) -> list[Grant]:
    """The grants active at ``now`` that raise ``rule``: of its feature and its dimension value (None: the total)."""
    return [
        grant
        for grant in grants
        if grant.feature_key == feature_key and grant.dimension_value == rule.dimension_value and grant.active(now)
    ]


def limit_figures(
    rule: LimitRule,
    feature_key: str,
    window: Window,
    used: int,
    grants: Sequence[Grant],
    near_limit_ratio: float,
    now: datetime,
) -> LimitFigures:
    """The figures of ``rule`` with ``used`` micro-units in ``window`` and the matching active ``grants``.

    A calendar window or cycle frees up at its end; lifetime never; a rolling window's moment needs
    its usage minute by minute (:mod:`usagemeter_api.domain.quota_windows`), so it is left None here.
    """
    matching = granted_for(rule, feature_key, grants, now) if grants else []
    expiries = [grant.expires_at for grant in matching if grant.expires_at is not None]
    return LimitFigures(
        rule=rule,
        range=window,
        used=used,
        limit=rule.limit_micros,
        granted=sum(grant.amount_micros for grant in matching),
        near_limit_ratio=near_limit_ratio,
        frees_at=None if rule.window.kind in ("rolling", "lifetime") else window.end,
        grant_expires_at=min(expiries, default=None),
    )


@lru_cache(maxsize=64)
def _ratio(ratio: float) -> tuple[int, int]:
    """``ratio`` as written (0.8 is 8/10), as an integer fraction."""
    numerator, denominator = Decimal(str(ratio)).as_integer_ratio()
    return numerator, denominator


def binding_of(figures: Sequence[LimitFigures]) -> LimitFigures | None:
    """The limit with the least remaining; ties go to the one that frees up first (None: no limits)."""
    return min(figures, key=_binding_key, default=None)


def _binding_key(figures: LimitFigures) -> tuple[int, datetime]:
    if figures.frees_at is not None:
        return figures.remaining, figures.frees_at
    if figures.rule.window.kind == "rolling":
        # Not worked out: a rolling window's usage starts leaving at the next minute at the earliest.
        return figures.remaining, figures.range.end
    return figures.remaining, _NEVER


def allows(figures: Sequence[LimitFigures], amount: int, enforcement: Enforcement) -> bool:
    """Whether ``amount`` more may go ahead: it fits in every limit, or the plan only reports going past them."""
    return enforcement == "soft" or all(limit.fits(amount) for limit in figures)
