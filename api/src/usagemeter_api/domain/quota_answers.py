"""Quota answers: a plan feature's limits read, evaluated and written as the REST bodies say.

The listing, one feature's quota, the dashboard and the check share these: each window a plan's
limits use is read once (all its slices together), through :class:`PeriodUsage`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.exceptions import Error as ClickHouseError

from usagemeter_api.domain.forecast import Forecast, forecast
from usagemeter_api.domain.grants import Grant
from usagemeter_api.domain.periods import Window, limit_window
from usagemeter_api.domain.plans import Plan
from usagemeter_api.domain.quota import Freshness, LimitFigures, binding_of, limit_figures
from usagemeter_api.domain.quota_windows import FeatureLayout, Matching, WindowRead, feature_layout, frees_at
from usagemeter_api.domain.usage.cache import Minutes
from usagemeter_api.domain.usage.period import PeriodUsage
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.errors import ClickHouseUnavailable
from usagemeter_api.quantity import from_micros
from usagemeter_api.schemas.plans import LimitWindow
from usagemeter_api.schemas.quotas import Binding, DimensionQuota, LimitQuota, PlanSummary, QuotaItem

__all__ = [
    "Readings",
    "binding_answer",
    "binding_fields",
    "evaluate",
    "layout_of",
    "limit_answer",
    "limit_fields",
    "merged",
    "plan_summary",
    "quota_item",
    "read_minutes",
    "read_plan_limits",
    "read_plan_quotas",
    "read_windows",
    "summary_fields",
    "with_frees",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readings:
    """Usage per (window, slice) in micro-units, each window's range at the moment, and how fresh they are."""

    usage: dict[tuple[LimitWindow, Slice], int]
    ranges: dict[LimitWindow, Window]
    freshness: Freshness


def layout_of(plan: Plan, feature_key: str) -> FeatureLayout | None:
    """The layout of ``feature_key`` in ``plan``; None when the plan does not meter it."""
    feature = plan.features.get(feature_key)
    return None if feature is None else feature_layout(feature_key, feature, LimitWindow(plan.period))


def plan_summary(plan_id: str, plan: Plan) -> PlanSummary:
    """What a quota answer says of the plan it was computed for."""
    return PlanSummary(id=plan_id, name=plan.name, period=plan.period, near_limit_ratio=plan.near_limit_ratio)


async def read_windows(
    usage: PeriodUsage,
    user_id: str,
    reads: Iterable[WindowRead],
    now: datetime,
    anchor: datetime | None,
    *,
    reuse: bool = False,
) -> Readings:
    """The usage of every read: one reading per read, so each window should be read once (see :func:`merged`)."""
    reads = list(reads)
    ranges = {read.window: limit_window(read.window, now, anchor) for read in reads}
    found: dict[tuple[LimitWindow, Slice], int] = {}
    freshness: Freshness | None = None
    readings = await usage.readings(user_id, [(read.slices, ranges[read.window]) for read in reads], reuse=reuse)
    for read, (totals, fresh) in zip(reads, readings, strict=True):
        found.update(zip(((read.window, part) for part in read.slices), totals, strict=True))
        freshness = fresh if freshness is None else freshness.oldest(fresh)
    return Readings(found, ranges, freshness or Freshness.now())


def merged(reads: Iterable[WindowRead]) -> list[WindowRead]:
    """``reads`` with one read per window, of all its slices."""
    windows: dict[LimitWindow, dict[Slice, None]] = {}
    for read in reads:
        windows.setdefault(read.window, {}).update(dict.fromkeys(read.slices))
    return [WindowRead(window, tuple(slices)) for window, slices in windows.items()]


def evaluate(
    layout: FeatureLayout,
    matching: Matching,
    readings: Readings,
    grants: Sequence[Grant],
    near_limit_ratio: float,
    now: datetime,
) -> list[LimitFigures]:
    """Every limit of ``matching`` with its figures at ``now``."""
    return [
        limit_figures(
            slot.rule,
            layout.feature_key,
            readings.ranges[slot.rule.window],
            readings.usage.get((slot.rule.window, slot.slice), 0),
            grants,
            near_limit_ratio,
            now,
        )
        for slot in matching.slots
    ]


def with_frees(
    figures: Sequence[LimitFigures], matching: Matching, minutes: Minutes | None, amount: int
) -> list[LimitFigures]:
    """``figures`` with when each limit lets ``amount`` in; a rolling one from its slice's usage per minute."""
    done = []
    for limit, slot in zip(figures, matching.slots, strict=True):
        inside = None
        if limit.rule.window.kind == "rolling" and minutes is not None and slot.slice in minutes:
            start = limit.range.start
            inside = [(minute, total) for minute, total in minutes[slot.slice] if minute >= start]
        moment = frees_at(limit, amount, inside)
        done.append(limit if moment == limit.frees_at else limit.with_frees_at(moment))
    return done


async def read_minutes(usage: PeriodUsage, user_id: str, spans: Sequence[tuple[Window, Slice]]) -> Minutes | None:
    """The usage per minute of the rolling limits' slices (range, slice) over the longest of their ranges: one query.

    None when there is none to read, or ClickHouse cannot be read: frees_at then stays unknown.
    """
    if not spans:
        return None
    span = Window(min(window.start for window, _ in spans), max(window.end for window, _ in spans))
    try:
        return await usage.minutes(user_id, list(dict.fromkeys(part for _, part in spans)), span)
    except (ClickHouseUnavailable, ClickHouseError) as exc:
        logger.debug("when rolling limits of %r free up is unknown: ClickHouse cannot be read: %s", user_id, exc)
        return None


def limit_fields(limit: LimitFigures) -> dict[str, object]:
    """One limit's figures as the answers show them (the fields of :class:`LimitQuota`)."""
    return {
        "window": limit.rule.window.label,
        "kind": limit.rule.window.kind,
        "dimension_value": limit.rule.dimension_value,
        "period_start": limit.range.start,
        "period_end": limit.range.end,
        "used": from_micros(limit.used),
        "limit": from_micros(limit.limit),
        "granted": from_micros(limit.granted),
        "available": from_micros(limit.available),
        "remaining": from_micros(limit.remaining),
        "percent_used": limit.percent_used,
        "near_limit": limit.near_limit,
        "exceeded": limit.exceeded,
        "frees_at": limit.frees_at,
        "grant_expires_at": limit.grant_expires_at,
    }


def binding_fields(limit: LimitFigures) -> dict[str, object]:
    """The binding limit (the fields of :class:`Binding`), with the grant expiry that comes before it frees up."""
    expiry = limit.grant_expires_at
    early = expiry if expiry is not None and (limit.frees_at is None or expiry < limit.frees_at) else None
    return {
        "window": limit.rule.window.label,
        "kind": limit.rule.window.kind,
        "dimension_value": limit.rule.dimension_value,
        "frees_at": limit.frees_at,
        "grant_expires_at": early,
    }


def limit_answer(limit: LimitFigures, now: datetime) -> LimitQuota:
    """One limit's figures with its forecast at ``now``, as a response model."""
    return LimitQuota(**limit_fields(limit), **_forecast_of(limit, now).fields())  # type: ignore[arg-type]


def _forecast_of(limit: LimitFigures, now: datetime) -> Forecast:
    return forecast(limit.used, limit.available, limit.range, limit.rule.window.kind, now)


def binding_answer(limit: LimitFigures) -> Binding:
    """The binding limit as a response model."""
    return Binding(**binding_fields(limit))  # type: ignore[arg-type]


def summary_fields(
    figures: Sequence[LimitFigures], unlimited: tuple[int, Window, LimitWindow], now: datetime
) -> dict[str, object]:
    """The top-level fields of a group of limits: the binding one's figures, or unlimited usage over a window.

    ``unlimited`` is the usage, range and window shown when there is no limit; forecasts are at ``now``.
    """
    binding = binding_of(figures)
    if binding is None:
        unlimited_used, unlimited_range, window = unlimited
        ahead = forecast(unlimited_used, None, unlimited_range, window.kind, now)
        return {
            "used": from_micros(unlimited_used),
            "limit": None,
            "remaining": None,
            "percent_used": None,
            "near_limit": False,
            "exceeded": False,
            "has_access": True,
            "period_start": unlimited_range.start,
            "period_end": unlimited_range.end,
            **ahead.fields(),
            "binding": None,
            "limits": [],
        }
    return {
        "used": from_micros(binding.used),
        "limit": from_micros(binding.limit),
        "remaining": from_micros(binding.remaining),
        "percent_used": binding.percent_used,
        "near_limit": any(limit.near_limit for limit in figures),
        "exceeded": any(limit.exceeded for limit in figures),
        "has_access": all(limit.has_access for limit in figures),
        "period_start": binding.range.start,
        "period_end": binding.range.end,
        **_forecast_of(binding, now).fields(),
        "binding": binding_answer(binding),
        "limits": [limit_answer(limit, now) for limit in figures],
    }


def _group(
    layout: FeatureLayout,
    matching: Matching,
    readings: Readings,
    grants: Sequence[Grant],
    plan: Plan,
    now: datetime,
    minutes: Minutes | None,
) -> dict[str, object]:
    figures = evaluate(layout, matching, readings, grants, plan.near_limit_ratio, now)
    figures = with_frees(figures, matching, minutes, 0)
    fallback = matching.reads[0]
    used = readings.usage.get((fallback.window, fallback.slices[0]), 0)
    return summary_fields(figures, (used, readings.ranges[fallback.window], fallback.window), now)


def quota_item(
    layout: FeatureLayout,
    readings: Readings,
    grants: Sequence[Grant],
    plan: Plan,
    now: datetime,
    minutes: Minutes | None = None,
) -> QuotaItem:
    """One feature's quota item: its feature-total limits at top level, and one item per limited dimension value."""
    feature = layout.feature
    dimensions = [
        DimensionQuota(dimension_value=value, **_group(layout, layout.own(value), readings, grants, plan, now, minutes))  # type: ignore[arg-type]
        for value in feature.dimension_values()
    ]
    top = _group(layout, layout.own(None), readings, grants, plan, now, minutes)
    return QuotaItem(
        feature_key=layout.feature_key,
        unit=feature.unit,
        dimension=feature.dimension,
        dimensions=dimensions,
        **top,  # type: ignore[arg-type]
    )


def _every_read(layout: FeatureLayout) -> list[WindowRead]:
    values = (None, *layout.feature.dimension_values())
    return [read for value in values for read in layout.own(value).reads]


def _rolling_spans(layout: FeatureLayout, readings: Readings) -> list[tuple[Window, Slice]]:
    values = (None, *layout.feature.dimension_values())
    slots = [slot for value in values for slot in layout.own(value).slots]
    return [(readings.ranges[slot.rule.window], slot.slice) for slot in slots if slot.rule.window.kind == "rolling"]


async def _read_layouts(
    usage: PeriodUsage, user_id: str, plan: Plan, keys: Sequence[str], anchor: datetime | None, now: datetime
) -> tuple[list[FeatureLayout], Readings]:
    """The layouts of the ``keys`` ``plan`` meters, and every window their limits use, each read once."""
    layouts = [layout for key in keys if (layout := layout_of(plan, key)) is not None]
    reads = merged(read for layout in layouts for read in _every_read(layout))
    return layouts, await read_windows(usage, user_id, reads, now, anchor)


async def read_plan_quotas(
    usage: PeriodUsage,
    user_id: str,
    plan: Plan,
    anchor: datetime | None,
    now: datetime,
    grants_of: dict[str, Sequence[Grant]],
    feature_keys: Sequence[str] | None = None,
) -> tuple[list[QuotaItem], Freshness]:
    """The quota items of ``feature_keys`` (default: every feature ``plan`` meters), and how fresh they are.

    Every window is read once for all its slices; rolling windows' usage per minute once for all of them.
    """
    keys = list(plan.features) if feature_keys is None else feature_keys
    layouts, readings = await _read_layouts(usage, user_id, plan, keys, anchor, now)
    rolling = [span for layout in layouts for span in _rolling_spans(layout, readings)]
    minutes = await read_minutes(usage, user_id, rolling)
    items = [
        quota_item(layout, readings, grants_of.get(layout.feature_key, ()), plan, now, minutes) for layout in layouts
    ]
    return items, readings.freshness


async def read_plan_limits(
    usage: PeriodUsage,
    user_id: str,
    plan: Plan,
    anchor: datetime | None,
    now: datetime,
    grants_of: dict[str, Sequence[Grant]],
) -> list[tuple[FeatureLayout, list[LimitFigures]]]:
    """Every limit of every feature ``plan`` meters with its figures at ``now``: per feature, then dimension value.

    Each limit appears once (the feature total's, then each dimension value's own); each window is read once.
    """
    layouts, readings = await _read_layouts(usage, user_id, plan, list(plan.features), anchor, now)
    found = []
    for layout in layouts:
        grants = grants_of.get(layout.feature_key, ())
        for value in (None, *layout.feature.dimension_values()):
            figures = evaluate(layout, layout.own(value), readings, grants, plan.near_limit_ratio, now)
            found.append((layout, figures))
    return found
