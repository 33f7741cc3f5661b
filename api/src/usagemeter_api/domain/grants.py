"""Grants of extra allowance: kept in ClickHouse, the live ones held in memory for the quota answers.

A grant raises each limit of its feature that it matches (the feature-total limits, or those of its
dimension value) by its amount while it is active: ``effective_from <= now < expires_at`` and not voided.
Every change inserts a row of ``usage_grants`` with a newer ``Version`` (a void is one), so the store
revalidates cheaply by comparing the table's newest version and row count, like the plan store, and
reloads the live grants only when they moved. A change made through this process is in memory at once.

Memory: the store holds the grants not yet expired nor voided (scheduled ones included), indexed by user
and feature; that is bounded by what admins create, about 0.7 KiB per grant (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from usagemeter_api.core.clock import epoch_ms, read_utc
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_api.quantity import as_decimal, micros_of_decimal
from usagemeter_clickhouse import Client, tables

__all__ = [
    "AlreadyVoided",
    "Grant",
    "GrantPage",
    "GrantStatus",
    "GrantStore",
    "UnknownGrant",
    "from_row",
    "grant_status",
    "list_grants",
]

logger = logging.getLogger(__name__)

COLUMNS = [
    "GrantId",
    "UserId",
    "FeatureKey",
    "DimensionValue",
    "Amount",
    "EffectiveFrom",
    "ExpiresAt",
    "Reason",
    "GrantedBy",
    "GrantedAt",
    "VoidedAt",
    "VoidedBy",
    "VoidReason",
]
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {tables.USAGE_GRANTS} FINAL"
_VERSIONS_SQL = f"SELECT max(Version), count() FROM {tables.USAGE_GRANTS}"
_LIVE_SQL = (
    f"{_SELECT} WHERE VoidedAt IS NULL"
    " AND (ExpiresAt IS NULL OR ExpiresAt > fromUnixTimestamp64Milli({now:Int64}, 'UTC'))"
)
_BY_ID_SQL = f"{_SELECT} WHERE GrantId = {{grant_id:UUID}}"
_NO_GRANTS: tuple[Grant, ...] = ()
#: How long a starting API waits for the grants before it serves without them.
FIRST_LOAD_WAIT_SECONDS = 5.0
_NO_FEATURES: dict[str, tuple[Grant, ...]] = {}


class UnknownGrant(LookupError):
    """No grant has the given id."""


class AlreadyVoided(ValueError):
    """The grant was voided before."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Extra allowance of one feature (or one dimension value of it) for one user over a time range."""

    grant_id: str
    user_id: str
    feature_key: str
    dimension_value: str | None
    amount_micros: int
    effective_from: datetime
    expires_at: datetime | None
    reason: str
    granted_by: str
    granted_at: datetime
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None = None

    def active(self, now: datetime) -> bool:
        """Whether the grant counts at ``now``: ``effective_from <= now < expires_at`` (or no expiry), not voided."""
        if self.voided_at is not None or now < self.effective_from:
            return False
        return self.expires_at is None or now < self.expires_at

    def live(self, now: datetime) -> bool:
        """Whether the grant is active or will be (not voided, not expired at ``now``)."""
        return self.voided_at is None and (self.expires_at is None or now < self.expires_at)


_Index = dict[str, dict[str, tuple[Grant, ...]]]


class GrantStore:
    """The live grants, read from ClickHouse and revalidated in the background every ``interval_seconds``."""

    def __init__(self, clock: Callable[[], datetime], interval_seconds: float = 0.5) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._index: _Index = {}
        self._versions: tuple[int, int] | None = None
        # The earliest expiry among the held grants: past it, the next revalidation drops the expired ones.
        self._next_expiry: datetime | None = None
        self._interval = interval_seconds
        self._background = BackgroundRefresh(
            "grant store", self.revalidate, interval_seconds, meanwhile="answering from the held grants"
        )
        self._loaded = threading.Event()

    def active(self, user_id: str, feature_key: str, now: datetime) -> Sequence[Grant]:
        """The grants of ``user_id`` for ``feature_key`` active at ``now``, from memory (no I/O)."""
        grants = self._index.get(user_id, _NO_FEATURES).get(feature_key, _NO_GRANTS)
        for grant in grants:
            if not grant.active(now):
                return tuple(grant for grant in grants if grant.active(now))
        return grants

    def held(self) -> int:
        """How many grants the store holds."""
        return sum(len(grants) for features in self._index.values() for grants in features.values())

    def start(self, client_factory: Callable[[], Client], *, wait_seconds: float = FIRST_LOAD_WAIT_SECONDS) -> None:
        """Keep the live grants revalidated in a background thread, waiting up to ``wait_seconds`` for the first load.

        So the first quota answers count every grant; when ClickHouse cannot be read in time it is
        logged and the background thread keeps trying.
        """
        if self._interval <= 0:
            try:
                with closing(client_factory()) as client:
                    self.revalidate(client)
            except Exception as exc:
                self._background.failed(exc)
            return
        self._background.start(client_factory)
        # A server that does not answer must not hold the API's start for its clients' long timeouts.
        if not self._loaded.wait(wait_seconds):
            logger.warning(
                "the grants are not loaded yet (ClickHouse has not answered within %g s); quota answers count"
                " no grant until they are",
                wait_seconds,
            )

    def close(self) -> None:
        """Stop the background revalidation."""
        self._background.close()

    def revalidate(self, client: Client) -> None:
        """Reload the live grants if ``usage_grants`` changed, else drop the ones that expired."""
        with self._lock:
            versions = tuple(int(value or 0) for value in client.query(_VERSIONS_SQL).result_rows[0])
            now = self._clock()
            if versions != self._versions:
                rows = client.query(_LIVE_SQL, parameters={"now": epoch_ms(now)}).result_rows
                self._rebuild([from_row(row) for row in rows], now)
                self._versions = (versions[0], versions[1])
            elif self._next_expiry is not None and self._next_expiry <= now:
                self._rebuild(self._all(), now)
        self._loaded.set()

    def create(self, client: Client, grant: Grant) -> Grant:
        """Record ``grant``; one with the same id recorded before is returned instead (a retried request)."""
        existing = self.find(client, grant.grant_id)
        if existing is not None:
            return existing
        client.insert(tables.USAGE_GRANTS, [grant_row(grant, time.time_ns())], column_names=[*COLUMNS, "Version"])
        self._apply(grant)
        return grant

    def void(self, client: Client, grant_id: str, voided_by: str, now: datetime, reason: str) -> Grant:
        """Void a grant from ``now`` on; UnknownGrant when there is none, AlreadyVoided the second time."""
        grant = self.find(client, grant_id)
        if grant is None:
            raise UnknownGrant(f"no grant has id {grant_id}")
        if grant.voided_at is not None:
            raise AlreadyVoided(f"grant {grant_id} was voided at {grant.voided_at.isoformat()} by {grant.voided_by}")
        voided = replace(grant, voided_at=now, voided_by=voided_by, void_reason=reason)
        client.insert(tables.USAGE_GRANTS, [grant_row(voided, time.time_ns())], column_names=[*COLUMNS, "Version"])
        self._apply(voided)
        return voided

    @staticmethod
    def find(client: Client, grant_id: str) -> Grant | None:
        """The grant with ``grant_id`` as last written, or None."""
        rows = client.query(_BY_ID_SQL, parameters={"grant_id": grant_id}).result_rows
        return from_row(rows[0]) if rows else None

    def _apply(self, changed: Grant) -> None:
        # Under the lock, after any revalidation that read before the insert has swapped its result in.
        with self._lock:
            grants = [grant for grant in self._all() if grant.grant_id != changed.grant_id]
            self._rebuild([*grants, changed], self._clock())

    def _all(self) -> list[Grant]:
        return [grant for features in self._index.values() for grants in features.values() for grant in grants]

    def _rebuild(self, grants: list[Grant], now: datetime) -> None:
        index: dict[str, dict[str, list[Grant]]] = {}
        live = [grant for grant in grants if grant.live(now)]
        for grant in live:
            index.setdefault(grant.user_id, {}).setdefault(grant.feature_key, []).append(grant)
        self._index = {user: {key: tuple(found) for key, found in f.items()} for user, f in index.items()}
        self._next_expiry = min((g.expires_at for g in live if g.expires_at is not None), default=None)


#: ``active``: counts now; ``scheduled``: counts from a later ``effective_from``; ``expired``; ``voided``.
GrantStatus = Literal["active", "scheduled", "expired", "voided"]
_STATUS_SQL: dict[str, str] = {
    "active": "VoidedAt IS NULL AND EffectiveFrom <= {now} AND (ExpiresAt IS NULL OR ExpiresAt > {now})",
    "scheduled": "VoidedAt IS NULL AND EffectiveFrom > {now} AND (ExpiresAt IS NULL OR ExpiresAt > {now})",
    "expired": "VoidedAt IS NULL AND ExpiresAt <= {now}",
    "voided": "VoidedAt IS NOT NULL",
}
_NOW = "fromUnixTimestamp64Milli({now:Int64}, 'UTC')"


@dataclass(frozen=True, slots=True)
class GrantPage:
    """Grants newest first, and the cursor of the next page (None on the last)."""

    grants: list[Grant]
    next_cursor: tuple[datetime, str] | None


def grant_status(grant: Grant, now: datetime) -> GrantStatus:
    """Where ``grant`` stands at ``now``."""
    if grant.voided_at is not None:
        return "voided"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return "active" if grant.effective_from <= now else "scheduled"


def list_grants(
    client: Client,
    now: datetime,
    *,
    user_id: str | None = None,
    feature_key: str | None = None,
    status: GrantStatus | None = None,
    limit: int = 100,
    after: tuple[datetime, str] | None = None,
) -> GrantPage:
    """Grants matching the filters, newest granted first, at most ``limit`` after the cursor ``after``."""
    conditions = ["1"]
    parameters: dict[str, object] = {"now": epoch_ms(now), "limit": limit + 1}
    if user_id is not None:
        conditions.append("UserId = {user:String}")
        parameters["user"] = user_id
    if feature_key is not None:
        conditions.append("FeatureKey = {feature:String}")
        parameters["feature"] = feature_key
    if status is not None:
        conditions.append(_STATUS_SQL[status].replace("{now}", _NOW))
    if after is not None:
        conditions.append("(GrantedAt, GrantId) < (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {gid:UUID})")
        parameters |= {"at": epoch_ms(after[0]), "gid": after[1]}
    sql = f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY GrantedAt DESC, GrantId DESC LIMIT {{limit:UInt32}}"
    grants = [from_row(row) for row in client.query(sql, parameters=parameters).result_rows]
    more = len(grants) > limit
    grants = grants[:limit]
    return GrantPage(grants, (grants[-1].granted_at, grants[-1].grant_id) if more else None)


def grant_row(grant: Grant, version: int) -> list[object]:
    """The ``usage_grants`` row of ``grant`` (``COLUMNS`` and ``Version``)."""
    return [
        UUID(grant.grant_id),
        grant.user_id,
        grant.feature_key,
        grant.dimension_value or "",
        as_decimal(grant.amount_micros),
        grant.effective_from,
        grant.expires_at,
        grant.reason,
        grant.granted_by,
        grant.granted_at,
        grant.voided_at,
        grant.voided_by or "",
        grant.void_reason or "",
        version,
    ]


def from_row(row: Sequence[Any]) -> Grant:
    """The grant a ``usage_grants`` row (``COLUMNS``) holds."""
    gid, user, feature, value, amount, start, end, reason, by, at, voided_at, voided_by, void_reason = row
    return Grant(
        grant_id=str(gid),
        user_id=str(user),
        feature_key=str(feature),
        dimension_value=str(value) or None,
        amount_micros=micros_of_decimal(amount),
        effective_from=read_utc(start),
        expires_at=None if end is None else read_utc(end),
        reason=str(reason),
        granted_by=str(by),
        granted_at=read_utc(at),
        voided_at=None if voided_at is None else read_utc(voided_at),
        voided_by=str(voided_by) or None,
        void_reason=str(void_reason) or None,
    )
