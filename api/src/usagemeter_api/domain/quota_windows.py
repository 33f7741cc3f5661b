"""Which usage a plan feature's limits read, and when a limit frees up.

:func:`feature_layout` works out once per plan feature (plans are frozen, so per object) which
slice each limit counts and which slices each window reads, so a quota check only looks them up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from usagemeter_api.domain.plans import Plan
from usagemeter_api.domain.quota import LimitFigures
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.schemas.plans import FeaturePlan, LimitRule, LimitWindow

__all__ = [
    "FeatureLayout",
    "LimitSlot",
    "Matching",
    "WindowRead",
    "feature_layout",
    "frees_at",
    "rolling_frees_at",
    "rolling_minutes",
]

#: Plan features whose layout is kept; past it the cache starts over (plans change rarely).
_LAYOUTS_MAX = 4096


@dataclass(frozen=True, slots=True)
class LimitSlot:
    """A limit and the usage slice it counts."""

    rule: LimitRule
    slice: Slice


@dataclass(frozen=True, slots=True)
class WindowRead:
    """One window to read, and the slices read over it."""

    window: LimitWindow
    slices: tuple[Slice, ...]


@dataclass(frozen=True, slots=True)
class Matching:
    """The limits a use with one dimension value counts against, and what to read for them."""

    slots: tuple[LimitSlot, ...]
    reads: tuple[WindowRead, ...]


class FeatureLayout:
    """A plan feature's limits with their slices, per dimension value (None: the feature-total limits)."""

    def __init__(self, feature_key: str, feature: FeaturePlan, period: LimitWindow) -> None:
        self.feature_key = feature_key
        self.feature = feature
        self.total = Slice.total(feature_key)
        #: An unlimited feature's usage is shown over the plan's period.
        self._period = period
        self._own = {value: self._of(value, own=True) for value in (None, *feature.dimension_values())}
        self._matching = {value: self._of(value, own=False) for value in (None, *feature.dimension_values())}

    def own(self, dimension_value: str | None) -> Matching:
        """The limits of exactly this dimension value (None: the feature total's)."""
        found = self._own.get(dimension_value)
        return found if found is not None else self._of(dimension_value, own=True)

    def matching(self, dimension_value: str | None) -> Matching:
        """The limits a use with ``dimension_value`` counts against: the feature total's and that value's."""
        found = self._matching.get(dimension_value)
        # A value the plan does not limit has the feature-total limits only.
        return found if found is not None else self._matching[None]

    def _of(self, value: str | None, *, own: bool) -> Matching:
        rules = [rule for rule in self.feature.limits if rule.dimension_value == value]
        if not own and value is not None:
            rules = [rule for rule in self.feature.limits if rule.dimension_value in (None, value)]
        slots = tuple(LimitSlot(rule, self._slice(rule.dimension_value)) for rule in rules)
        if not slots:
            return Matching((), (WindowRead(self._period, (self._slice(value),)),))
        windows: dict[LimitWindow, dict[Slice, None]] = {}
        for slot in slots:
            windows.setdefault(slot.rule.window, {})[slot.slice] = None
        return Matching(slots, tuple(WindowRead(window, tuple(slices)) for window, slices in windows.items()))

    def _slice(self, value: str | None) -> Slice:
        if value is None or self.feature.dimension is None:
            return self.total
        return Slice(self.feature_key, self.feature.dimension, value)


_layouts: dict[tuple[int, str, str], tuple[FeaturePlan, FeatureLayout]] = {}
_layouts_lock = threading.Lock()


def feature_layout(feature_key: str, feature: FeaturePlan, period: LimitWindow) -> FeatureLayout:
    """The layout of ``feature`` (metered as ``feature_key``), worked out once per plan object."""
    key = (id(feature), feature_key, period.label)
    found = _layouts.get(key)
    # The entry holds the plan object, so its id cannot be reused by another while it is kept.
    if found is not None and found[0] is feature:
        return found[1]
    layout = FeatureLayout(feature_key, feature, period)
    with _layouts_lock:
        if len(_layouts) >= _LAYOUTS_MAX:
            _layouts.clear()
        _layouts[key] = (feature, layout)
    return layout


def rolling_minutes(plans: Iterable[Plan]) -> set[int]:
    """The lengths in minutes of every rolling window the plans limit (what an in-memory view must hold)."""
    return {
        rule.window.minutes
        for plan in plans
        for feature in plan.features.values()
        for rule in feature.limits
        if rule.window.minutes is not None
    }


def frees_at(figures: LimitFigures, amount: int, minutes: Sequence[tuple[datetime, int]] | None) -> datetime | None:
    """When ``amount`` more fits in the limit again; None when it never does (lifetime, or above the allowance).

    A calendar window or cycle frees up at its end. A rolling one frees up as its usage leaves it,
    read from ``minutes`` (its usage per minute, oldest first; None: not read, so not known).
    """
    kind = figures.rule.window.kind
    if kind == "lifetime" or amount > figures.available:
        return None
    if kind != "rolling":
        return figures.range.end
    # With nothing used inside, nothing is to leave it.
    return None if minutes is None or figures.used <= 0 else rolling_frees_at(figures, amount, minutes)


def rolling_frees_at(figures: LimitFigures, amount: int, minutes: Sequence[tuple[datetime, int]]) -> datetime:
    """The first minute at which enough usage has left the rolling window for ``amount`` to fit.

    When it fits already, the minute the oldest usage leaves. Assumes no new usage meanwhile.
    """
    length = figures.rule.window.minutes
    assert length is not None
    stay = timedelta(minutes=length)
    need = max(figures.used + amount - figures.available, 1)
    left = 0
    for minute, quantity in minutes:
        left += quantity
        if left >= need:
            # A minute's usage leaves the window ``length`` minutes after that minute starts.
            return minute + stay
    # Usage newer than the minutes read: everything inside now has left once the current minute has.
    return figures.range.end - timedelta(minutes=1) + stay
