"""The webhook outbox in ClickHouse: events recorded once, each one's delivery to each endpoint, and every attempt.

Events and deliveries are ReplacingMergeTree rows read with ``FINAL``, so recording the same event twice
(two replicas, a restart, a retried insert) leaves one, and an attempt's newer row replaces the delivery's
state. A delivery is sent by the replica whose rank the event id hashes to (:mod:`.replicas`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from usagemeter_api.core.clock import epoch_ms, read_utc
from usagemeter_api.domain.webhooks.events import RESETTING_KINDS, WebhookEvent
from usagemeter_clickhouse import Client, tables

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryState",
    "EndedGroup",
    "attempts_of",
    "due_deliveries",
    "ended_groups",
    "groups_since",
    "known_events",
    "record_attempts",
    "record_events",
    "recorded_deliveries",
]

DeliveryState = Literal["pending", "delivered", "failed"]

#: How long events are kept past their period's end (a lifetime event is kept for good).
_KEEP_AFTER_PERIOD = timedelta(days=35)
_KEEP_MAX = datetime(2105, 12, 31, tzinfo=UTC)
#: The latest moment DateTime64 holds: a lifetime window's end is stored as this.
_STORED_MAX = datetime(2299, 12, 31, tzinfo=UTC)
_FIRST_VERSION = 1
_EVENT_COLUMNS = [
    "EventId", "Type", "GroupKey", "UserId", "FeatureKey", "DimensionValue", "Window", "WindowKind",
    "PeriodStart", "PeriodEnd", "OccurredAt", "Payload", "KeepUntil", "Version",
]  # fmt: skip
_DELIVERY_COLUMNS = [
    "EventId", "EndpointId", "State", "Attempts", "NextAttemptAt", "CreatedAt", "UpdatedAt", "LastStatus",
    "LastError", "Version",
]  # fmt: skip
_ATTEMPT_COLUMNS = [
    "EndpointId", "EventId", "Attempt", "AttemptedAt", "StatusCode", "Error", "DurationMs", "ReplicaId",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event's delivery to one endpoint, as it stands."""

    event_id: str
    endpoint_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    last_status: int | None
    last_error: str
    #: The event's type and body as sent (filled by :func:`due_deliveries` and :func:`recorded_deliveries`).
    type: str = ""
    payload: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at sending a delivery and what came of it (``status`` None: no HTTP answer)."""

    delivery: Delivery
    attempted_at: datetime
    status: int | None
    error: str
    duration_ms: int
    replica_id: str
    #: Where the delivery stands after this attempt.
    state: DeliveryState
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class EndedGroup:
    """A limit some user crossed a threshold of in a period that has ended."""

    user_id: str
    feature_key: str
    dimension_value: str | None
    window: str
    period_start: datetime


def record_events(
    client: Client, events: Sequence[WebhookEvent], endpoints: Iterable[tuple[str, str]], at: datetime
) -> None:
    """Record ``events`` and a delivery of each, due ``at``, to every (endpoint id, event type) subscribing to it.

    The deliveries go in first: an event recorded is one detection never records again, so its deliveries
    must already be there; a delivery whose event is not recorded yet is not sent until it is.
    """
    if not events:
        return
    subscribed = list(endpoints)
    rows = [
        _delivery_row(event.event_id, endpoint_id, at)
        for event in events
        for endpoint_id, kind in subscribed
        if kind == event.type
    ]
    if rows:
        client.insert(tables.WEBHOOK_DELIVERIES, rows, column_names=_DELIVERY_COLUMNS)
    client.insert(tables.WEBHOOK_EVENTS, [_event_row(event) for event in events], column_names=_EVENT_COLUMNS)


def _event_row(event: WebhookEvent) -> list[object]:
    keep = min(event.period_end + _KEEP_AFTER_PERIOD, _KEEP_MAX) if event.period_end < _KEEP_MAX else _KEEP_MAX
    # The first recording wins: a later detection of the event is older in Version terms.
    version = 2**63 - time.time_ns()
    return [
        event.event_id, event.type, event.group, event.user_id, event.feature_key, event.dimension_value or '',
        event.window, event.window_kind, event.period_start, min(event.period_end, _STORED_MAX), event.occurred_at,
        event.payload(), keep.replace(tzinfo=None), version,
    ]  # fmt: skip


def _delivery_row(event_id: str, endpoint_id: str, at: datetime) -> list[object]:
    return [event_id, UUID(endpoint_id), "pending", 0, at, at, at, 0, "", _FIRST_VERSION]


def known_events(client: Client, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` are recorded."""
    if not event_ids:
        return set()
    sql = f"SELECT DISTINCT EventId FROM {tables.WEBHOOK_EVENTS} WHERE EventId IN {{ids:Array(String)}}"
    return {str(row[0]) for row in client.query(sql, parameters={"ids": list(event_ids)}).result_rows}


def groups_since(client: Client, groups: Sequence[str], since: datetime) -> dict[str, datetime]:
    """When each of ``groups`` that had an event at or after ``since`` had its latest."""
    if not groups:
        return {}
    sql = (
        f"SELECT GroupKey, max(OccurredAt) FROM {tables.WEBHOOK_EVENTS}"
        " WHERE GroupKey IN {groups:Array(String)} AND OccurredAt >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
        " GROUP BY GroupKey"
    )
    rows = client.query(sql, parameters={"groups": list(groups), "since": epoch_ms(since)}).result_rows
    return {str(group): read_utc(at) for group, at in rows}


def ended_groups(client: Client, now: datetime, since: datetime, limit: int) -> list[EndedGroup]:
    """Limits crossed in periods that ended between ``since`` and ``now`` and have no quota.reset yet.

    Only windows that start over (calendar periods and cycles) reset.
    """
    group = "UserId, FeatureKey, DimensionValue, Window, PeriodStart"
    ended = (
        " AND PeriodEnd <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')"
        " AND PeriodEnd > fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
    )
    sql = (
        f"SELECT {group} FROM {tables.WEBHOOK_EVENTS}"
        " WHERE Type IN ('quota.threshold_reached', 'quota.exceeded') AND WindowKind IN {kinds:Array(String)}"
        f"{ended} AND ({group}) NOT IN"
        f" (SELECT {group} FROM {tables.WEBHOOK_EVENTS} WHERE Type = 'quota.reset'{ended})"
        f" GROUP BY {group} ORDER BY {group} LIMIT {{limit:UInt32}}"
    )
    parameters = {"kinds": sorted(RESETTING_KINDS), "now": epoch_ms(now), "since": epoch_ms(since), "limit": limit}
    return [
        EndedGroup(str(user), str(feature), str(value) or None, str(window), read_utc(start))
        for user, feature, value, window, start in client.query(sql, parameters=parameters).result_rows
    ]


_DELIVERY_SELECT = (
    "SELECT EventId, toString(EndpointId), State, Attempts, NextAttemptAt, CreatedAt, UpdatedAt, LastStatus,"
    f" LastError FROM {tables.WEBHOOK_DELIVERIES} FINAL WHERE "
)


def due_deliveries(client: Client, now: datetime, rank: int, replicas: int, limit: int) -> list[Delivery]:
    """Pending deliveries due at ``now`` whose event id hashes to ``rank`` of ``replicas``, oldest due first."""
    sql = _DELIVERY_SELECT + (
        "State = 'pending' AND NextAttemptAt <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')"
        " AND cityHash64(EventId) % {replicas:UInt32} = {rank:UInt32} ORDER BY NextAttemptAt LIMIT {limit:UInt32}"
    )
    parameters = {"now": epoch_ms(now), "rank": rank, "replicas": max(replicas, 1), "limit": limit}
    return _with_events(client, client.query(sql, parameters=parameters).result_rows)


def recorded_deliveries(
    client: Client, endpoint_id: str, limit: int, before: tuple[datetime, str] | None = None
) -> list[Delivery]:
    """The deliveries to ``endpoint_id``, newest first, at most ``limit``, after the cursor ``before``."""
    where = "EndpointId = {endpoint:UUID}"
    parameters: dict[str, object] = {"endpoint": endpoint_id, "limit": limit}
    if before is not None:
        where += " AND (CreatedAt, EventId) < (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {event:String})"
        parameters |= {"at": epoch_ms(before[0]), "event": before[1]}
    sql = _DELIVERY_SELECT + where + " ORDER BY CreatedAt DESC, EventId DESC LIMIT {limit:UInt32}"
    return _with_events(client, client.query(sql, parameters=parameters).result_rows)


def _with_events(client: Client, rows: Sequence[Sequence[Any]]) -> list[Delivery]:
    """The deliveries of ``rows`` with their events' type and body (a delivery whose event is gone is left out)."""
    if not rows:
        return []
    sql = f"SELECT EventId, Type, Payload FROM {tables.WEBHOOK_EVENTS} FINAL WHERE EventId IN {{ids:Array(String)}}"
    ids = list({str(row[0]) for row in rows})
    found = client.query(sql, parameters={"ids": ids}).result_rows
    events = {str(event): (str(kind), str(body)) for event, kind, body in found}
    return [_delivery(row, *events[str(row[0])]) for row in rows if str(row[0]) in events]


def _delivery(row: Sequence[Any], kind: str, payload: str) -> Delivery:
    event, endpoint, state, attempts, due, created, updated, status, error = row
    return Delivery(
        str(event), str(endpoint), state, int(attempts), read_utc(due), read_utc(created), read_utc(updated),
        int(status) or None, str(error), kind, payload,
    )  # fmt: skip


def attempts_of(client: Client, endpoint_id: str, event_ids: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Each attempt at delivering ``event_ids`` to ``endpoint_id``: (attempt, at, status, error, ms), in order."""
    if not event_ids:
        return {}
    sql = (
        f"SELECT EventId, Attempt, AttemptedAt, StatusCode, Error, DurationMs FROM {tables.WEBHOOK_ATTEMPTS}"
        " WHERE EndpointId = {endpoint:UUID} AND EventId IN {ids:Array(String)} ORDER BY EventId, AttemptedAt"
    )
    found: dict[str, list[tuple[Any, ...]]] = {}
    rows = client.query(sql, parameters={"endpoint": endpoint_id, "ids": list(event_ids)}).result_rows
    for event, attempt, at, status, error, duration in rows:
        found.setdefault(str(event), []).append((int(attempt), read_utc(at), int(status), str(error), int(duration)))
    return found


def record_attempts(client: Client, attempts: Sequence[Attempt]) -> None:
    """Log ``attempts`` and move each delivery to where it stands after its attempt."""
    if not attempts:
        return
    logged = [_attempt_row(attempt) for attempt in attempts]
    client.insert(tables.WEBHOOK_ATTEMPTS, logged, column_names=_ATTEMPT_COLUMNS)
    rows = [_after_attempt(attempt) for attempt in attempts]
    client.insert(tables.WEBHOOK_DELIVERIES, rows, column_names=_DELIVERY_COLUMNS)


def _attempt_row(attempt: Attempt) -> list[object]:
    delivery = attempt.delivery
    return [
        UUID(delivery.endpoint_id), delivery.event_id, delivery.attempts + 1, attempt.attempted_at,
        attempt.status or 0, attempt.error[:1000], attempt.duration_ms, attempt.replica_id,
    ]  # fmt: skip


def _after_attempt(attempt: Attempt) -> list[object]:
    delivery = attempt.delivery
    # Newer than the first row and than any earlier attempt's, whichever replica made it.
    version = max(time.time_ns(), _FIRST_VERSION + 1)
    return [
        delivery.event_id, UUID(delivery.endpoint_id), attempt.state, delivery.attempts + 1, attempt.next_attempt_at,
        delivery.created_at, attempt.attempted_at, attempt.status or 0, attempt.error[:1000], version,
    ]  # fmt: skip
