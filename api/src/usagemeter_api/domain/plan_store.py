"""Plans and assignments kept in ClickHouse, seeded from the plans file on a fresh install.

Each change inserts a row with a newer ``Version``; readers take the newest row
per key. The catalog is cached per process and revalidated by comparing the tables'
newest versions, so a change made by any process takes effect within ``ttl_seconds``,
and at once in the process that made it. A started store revalidates in a background
thread twice per ``ttl_seconds``, so requests read its snapshot without waiting for ClickHouse.

The last good catalog is held for as long as ClickHouse cannot be read: once a
revalidation failed, readers get the held catalog (:meth:`PlanStore.snapshot`) until one
succeeds, instead of each retrying on its request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_api.errors import PlanConflict, UnknownPlan
from usagemeter_clickhouse import Client, dimension_attributes, tables

__all__ = ["PlanStore"]

logger = logging.getLogger(__name__)

#: The version of seeded rows: older than any change made through the API.
_SEED_VERSION = 1
_PLAN_COLUMNS = ["PlanId", "Name", "Period", "NearLimitRatio", "Enforcement", "Limits", "IsDefault", "Version"]
_ASSIGNMENT_COLUMNS = ["UserId", "PlanId", "Version"]
_PLANS_SQL = f"SELECT {', '.join(_PLAN_COLUMNS[:-1])} FROM {tables.PLANS} FINAL ORDER BY PlanId"
_ASSIGNMENTS_SQL = f"SELECT UserId, PlanId, Version FROM {tables.PLAN_ASSIGNMENTS} FINAL"
#: Each table's newest version and row count, tagged (UNION ALL keeps no order). Run twice a second
#: by every API process: as one SELECT of four scalar subqueries it cost ClickHouse twice as much.
_VERSIONS_SQL = (
    f"SELECT 0, max(Version), count() FROM {tables.PLANS}"
    f" UNION ALL SELECT 1, max(Version), count() FROM {tables.PLAN_ASSIGNMENTS}"
)


@dataclass(frozen=True)
class _Snapshot:
    versions: tuple[int, ...]
    catalog: PlanCatalog
    checked_at: float


class PlanStore:
    """The plans and assignments in ClickHouse, cached for ``ttl_seconds``."""

    def __init__(self, seed: PlanCatalog, ttl_seconds: float = 1.0) -> None:
        self._seed = seed
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        # When the latest revalidation failed (monotonic); None while they succeed.
        self._failed_at: float | None = None
        self._background = BackgroundRefresh(
            "plan catalog", self._revalidate, ttl_seconds / 2, meanwhile="answering from the held catalog"
        )

    def snapshot(self) -> PlanCatalog | None:
        """The catalog to use without a query, else None (call :meth:`catalog`).

        That is the cached catalog if it was revalidated within ``ttl_seconds``, or the held
        one if a revalidation failed within ``ttl_seconds`` (ClickHouse is away).
        """
        snapshot = self._snapshot
        if snapshot is None:
            return None
        now = time.monotonic()
        failed_at = self._failed_at
        if now - snapshot.checked_at < self._ttl or (failed_at is not None and now - failed_at < self._ttl):
            return snapshot.catalog
        return None

    def held(self) -> PlanCatalog | None:
        """The last catalog read from ClickHouse, however old; None when none was ever read."""
        snapshot = self._snapshot
        return None if snapshot is None else snapshot.catalog

    def revalidation_failed(self, exc: Exception) -> PlanCatalog | None:
        """Note that reading the catalog failed with ``exc``; returns the held catalog to answer with, if any."""
        self._background.failed(exc)
        self._failed_at = time.monotonic()
        return self.held()

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Keep the snapshot revalidated in a background thread (with a positive ``ttl_seconds``)."""
        self._background.start(client_factory)

    def close(self) -> None:
        """Stop the background revalidation."""
        self._background.close()

    def _revalidate(self, client: Client) -> None:
        try:
            with self._lock:
                self._refresh(client)
        except Exception:
            self._failed_at = time.monotonic()
            raise
        self._failed_at = None

    def catalog(self, client: Client) -> PlanCatalog:
        """The current plans, default plan and assignments."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.checked_at < self._ttl:
            return snapshot.catalog
        # While one request revalidates, the others keep using the catalog it is revalidating
        # instead of queueing behind its query; with nothing cached yet they wait for it.
        if not self._lock.acquire(blocking=snapshot is None):
            assert snapshot is not None
            return snapshot.catalog
        try:
            snapshot = self._snapshot
            if snapshot is not None and time.monotonic() - snapshot.checked_at < self._ttl:
                return snapshot.catalog
            return self._refresh(client).catalog
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Expire the cached catalog, so the next read sees every change (it stays held for outages)."""
        snapshot = self._snapshot
        if snapshot is not None:
            self._snapshot = _Snapshot((), snapshot.catalog, float("-inf"))

    def create_plan(self, client: Client, plan_id: str, plan: Plan, *, default: bool = False) -> PlanCatalog:
        """Add a plan; PlanConflict when the id is taken."""
        current = self._fresh(client)
        if plan_id in current.plans:
            raise PlanConflict(f"plan {plan_id!r} already exists; update it with PUT")
        return self._write_plan(client, current, plan_id, plan, default)

    def update_plan(self, client: Client, plan_id: str, plan: Plan, *, default: bool | None = None) -> PlanCatalog:
        """Replace a plan's definition; ``default`` None keeps whether it is the default."""
        current = self._fresh(client)
        if plan_id not in current.plans:
            raise UnknownPlan(_unknown(plan_id, current))
        is_default = current.default_plan == plan_id
        if default is False and is_default:
            raise PlanConflict(f"plan {plan_id!r} is the default plan; make another plan the default first")
        return self._write_plan(client, current, plan_id, plan, is_default if default is None else default)

    def assign(self, client: Client, user_id: str, plan_id: str) -> None:
        """Put ``user_id`` on ``plan_id`` from now on."""
        current = self._fresh(client)
        if plan_id not in current.plans:
            raise UnknownPlan(_unknown(plan_id, current))
        client.insert(tables.PLAN_ASSIGNMENTS, [[user_id, plan_id, time.time_ns()]], column_names=_ASSIGNMENT_COLUMNS)
        # Revalidated under the lock, so a background revalidation that read before the insert cannot win.
        self._fresh(client)

    def _write_plan(self, client: Client, current: PlanCatalog, plan_id: str, plan: Plan, default: bool) -> PlanCatalog:
        version = time.time_ns()
        rows = [_plan_row(plan_id, plan, default, version)]
        previous = current.default_plan
        if default and previous != plan_id:
            rows.append(_plan_row(previous, current.plans[previous], False, version))
        client.insert(tables.PLANS, rows, column_names=_PLAN_COLUMNS)
        return self._fresh(client)

    def _fresh(self, client: Client) -> PlanCatalog:
        with self._lock:
            return self._refresh(client, reread=True).catalog

    def _refresh(self, client: Client, *, reread: bool = False) -> _Snapshot:
        versions = _versions(client)
        snapshot = self._snapshot
        if snapshot is None:
            self._warn_unknown_dimensions(client)
        if snapshot is not None and snapshot.versions == versions and not reread:
            snapshot = _Snapshot(versions, snapshot.catalog, time.monotonic())
        else:
            if versions[1] == 0:
                versions = self._seed_tables(client)
            snapshot = _Snapshot(versions, _read_catalog(client), time.monotonic())
        self._snapshot = snapshot
        return snapshot

    def _warn_unknown_dimensions(self, client: Client) -> None:
        # Not fatal: such a feature is still metered; its dimension limits just see no usage.
        allowed = dimension_attributes(client)
        for plan_id, plan in self._seed.plans.items():
            for key, feature in plan.features.items():
                if feature.dimension is not None and feature.dimension not in allowed:
                    logger.warning(
                        "plan %s meters %s by dimension %r, which is not on the allow-list"
                        " (USAGEMETER_DIMENSION_ATTRIBUTES: %s): its dimension limits see no usage",
                        plan_id,
                        key,
                        feature.dimension,
                        ", ".join(allowed) or "empty",
                    )

    def _seed_tables(self, client: Client) -> tuple[int, ...]:
        seed = self._seed
        rows = [_plan_row(pid, plan, pid == seed.default_plan, _SEED_VERSION) for pid, plan in seed.plans.items()]
        client.insert(tables.PLANS, rows, column_names=_PLAN_COLUMNS)
        if seed.assignments:
            assigned = [[user, plan_id, _SEED_VERSION] for user, plan_id in seed.assignments.items()]
            client.insert(tables.PLAN_ASSIGNMENTS, assigned, column_names=_ASSIGNMENT_COLUMNS)
        logger.info("seeded %d plans and %d assignments from the plans file", len(rows), len(seed.assignments))
        return _versions(client)


def _versions(client: Client) -> tuple[int, ...]:
    """The plans' newest version and count, then the assignments'."""
    rows = sorted(client.query(_VERSIONS_SQL).result_rows, key=lambda row: int(row[0]))
    return tuple(int(value or 0) for _, version, count in rows for value in (version, count))


def _plan_row(plan_id: str, plan: Plan, default: bool, version: int) -> list[object]:
    # The Limits column holds the canonical features (rows of earlier releases hold key -> uses, still read).
    limits = json.dumps(plan.model_dump(mode="json")["features"], sort_keys=True)
    return [plan_id, plan.name, plan.period, plan.near_limit_ratio, plan.enforcement, limits, default, version]


def _read_catalog(client: Client) -> PlanCatalog:
    plans: dict[str, Plan] = {}
    default_plan = ""
    for plan_id, name, period, ratio, enforcement, limits, is_default in client.query(_PLANS_SQL).result_rows:
        plans[plan_id] = Plan(
            name=name, period=period, near_limit_ratio=ratio, enforcement=enforcement, features=json.loads(limits)
        )
        if is_default:
            default_plan = plan_id
    assignments: dict[str, str] = {}
    assigned_at: dict[str, datetime] = {}
    for user, plan_id, version in client.query(_ASSIGNMENTS_SQL).result_rows:
        if plan_id in plans:
            assignments[user] = plan_id
            if version > _SEED_VERSION:
                # A change through the API is versioned by its time in nanoseconds; a seeded one has no date.
                assigned_at[user] = datetime.fromtimestamp(version / 1e9, UTC)
    return PlanCatalog(
        default_plan=default_plan or next(iter(plans)), plans=plans, assignments=assignments, assigned_at=assigned_at
    )


def _unknown(plan_id: str, catalog: PlanCatalog) -> str:
    return f"unknown plan {plan_id[:100]!r}; plans: {', '.join(catalog.plans)}"
