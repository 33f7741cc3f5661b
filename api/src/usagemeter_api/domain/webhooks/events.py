"""Webhook events: which thresholds a limit's figures have crossed, each event's stable id and its body.

An event's id is a hash of what it is about and the period it is about (user, feature, dimension value,
window, period start, threshold), so every detection of the same crossing, by any replica and after any
restart, names the same event, and receivers dedupe on ``webhook-id``. These functions are pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import get_args

from usagemeter_api.domain.forecast import forecast
from usagemeter_api.domain.quota import LimitFigures
from usagemeter_api.quantity import from_micros
from usagemeter_api.schemas.plans import Threshold
from usagemeter_api.schemas.webhooks import EventTypeName

__all__ = [
    "EVENT_TYPES",
    "Crossing",
    "EventType",
    "WebhookEvent",
    "crossings",
    "event_id",
    "projection",
    "reset_event",
    "threshold_event",
]

#: The event types, as the REST bodies name them.
EventType = EventTypeName
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

#: Windows that start over at a moment: a user who crossed in one gets quota.reset when the next begins.
RESETTING_KINDS = frozenset({"day", "week", "month", "cycle"})


@dataclass(frozen=True, slots=True)
class Crossing:
    """One threshold of one limit that ``figures`` has reached (``threshold`` None: the grants are used up)."""

    type: EventType
    figures: LimitFigures
    threshold: Threshold | None
    #: What the threshold names as a percent of what the limit allows (grants included), two decimals.
    threshold_percent: float | None
    #: Fields the body carries beside the common ones.
    extra: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An event due to every endpoint subscribed to its type, with the body each is sent."""

    event_id: str
    type: EventType
    #: What the event is about, less its period: events of one group repeat once per period.
    group: str
    user_id: str
    feature_key: str
    dimension_value: str | None
    window: str
    window_kind: str
    period_start: datetime
    period_end: datetime
    occurred_at: datetime
    body: dict[str, object]

    def payload(self) -> str:
        """The body as sent: compact JSON, keys sorted (the signature covers these exact bytes)."""
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True)


def crossings(figures: LimitFigures, thresholds: tuple[Threshold, ...]) -> list[Crossing]:
    """The thresholds ``figures`` has reached, and grant.exhausted when grants raised the limit and are used up.

    Nothing is reached before any use: a zero allowance is not announced to a user who never used the feature.
    """
    if figures.used <= 0:
        return []
    found = []
    for threshold in thresholds:
        level = _level(threshold, figures.available)
        if figures.used >= level:
            kind: EventType = "quota.exceeded" if threshold.percent == 100 else "quota.threshold_reached"
            found.append(Crossing(kind, figures, threshold, _percent_of(threshold, figures.available)))
    if figures.granted > 0 and figures.used >= figures.available:
        found.append(Crossing("grant.exhausted", figures, None, 100.0))
    return found


def projection(figures: LimitFigures, now: datetime) -> Crossing | None:
    """quota.projected_to_exceed when the window's forecast runs out before its end and it has not yet.

    Only windows with a forecast (calendar periods and cycles): :mod:`usagemeter_api.domain.forecast`.
    """
    if figures.used >= figures.available:
        return None
    ahead = forecast(figures.used, figures.available, figures.range, figures.rule.window.kind, now)
    if ahead.exhausted_at is None:
        return None
    projected = from_micros(ahead.projected_used or 0)
    extra = (("projected_used", projected), ("projected_exhausted_at", _iso(ahead.exhausted_at)))
    return Crossing("quota.projected_to_exceed", figures, None, None, extra)


def _level(threshold: Threshold, available: int) -> int | Decimal:
    if threshold.amount_micros is not None:
        return threshold.amount_micros
    # As a Decimal the level is exact: 80 % of 50 is 40, not 40.000000000000004.
    return Decimal(str(threshold.percent)) * available / 100


def _percent_of(threshold: Threshold, available: int) -> float | None:
    if threshold.percent is not None:
        return threshold.percent
    amount = threshold.amount_micros or 0
    return round(amount / available * 100, 2) if available else None


def _threshold_label(crossing: Crossing) -> str:
    threshold = crossing.threshold
    if threshold is None:
        return "grants" if crossing.type == "grant.exhausted" else "projection"
    return f"{threshold.percent}%" if threshold.percent is not None else f"={threshold.amount_micros}"


def event_id(*parts: object) -> str:
    """A stable id for the event named by ``parts`` (``evt_`` and 32 hex digits)."""
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return "evt_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _group_parts(user_id: str, feature_key: str, figures: LimitFigures) -> tuple[object, ...]:
    return user_id, feature_key, figures.rule.dimension_value, figures.rule.window.label


def threshold_event(
    crossing: Crossing, user_id: str, feature_key: str, now: datetime, period_key: datetime | None = None
) -> WebhookEvent:
    """The event of ``crossing``; ``period_key`` names the period in its id (default: the window's start)."""
    figures = crossing.figures
    group = event_id(crossing.type, *_group_parts(user_id, feature_key, figures), _threshold_label(crossing))
    key = figures.range.start if period_key is None else period_key
    event = _event(
        event_id(group, key.isoformat()), crossing.type, group, user_id, feature_key, figures,
        crossing.threshold_percent, now,
    )  # fmt: skip
    event.body.update(crossing.extra)
    return event


def reset_event(figures: LimitFigures, user_id: str, feature_key: str, ended: datetime, now: datetime) -> WebhookEvent:
    """quota.reset for the limit of ``figures`` (as of the new period), whose period starting at ``ended`` is over.

    The body tells the new period; the event is recorded as about the period that ended.
    """
    group = event_id("quota.reset", *_group_parts(user_id, feature_key, figures))
    event = _event(event_id(group, ended.isoformat()), "quota.reset", group, user_id, feature_key, figures, None, now)
    return replace(event, period_start=ended, period_end=figures.range.start)


def _event(
    identifier: str,
    kind: EventType,
    group: str,
    user_id: str,
    feature_key: str,
    figures: LimitFigures,
    threshold_percent: float | None,
    now: datetime,
) -> WebhookEvent:
    rule, window = figures.rule, figures.range
    body: dict[str, object] = {
        "type": kind,
        "user_id": user_id,
        "feature_key": feature_key,
        "dimension_value": rule.dimension_value,
        "threshold_percent": threshold_percent,
        "used": from_micros(figures.used),
        "limit": from_micros(figures.limit),
        "granted": from_micros(figures.granted),
        "window": rule.window.label,
        "period_start": _iso(window.start),
        "period_end": _iso(window.end),
        "occurred_at": _iso(now),
    }
    return WebhookEvent(
        identifier, kind, group, user_id, feature_key, rule.dimension_value, rule.window.label, rule.window.kind,
        window.start, window.end, now, body,
    )  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
