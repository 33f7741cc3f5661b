"""The dashboard's user-independent part: conversions, worker status and system health.

Its reads run concurrently, each on a pooled client in the thread pool (``ClientPool.call``), beside the
collectors' health checks, and the result is reused for ``ttl_seconds``: these figures move on the scale of heartbeats
and minutes, and every dashboard of every user shares them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from usagemeter_api.core.pool import ClientPool
from usagemeter_api.domain.collector_probes import CollectorProbe, CollectorProbes
from usagemeter_api.domain.system_health import (
    HealthThresholds,
    collector_reports,
    conversions,
    health_details,
    newest_point,
)
from usagemeter_api.domain.workers import worker_report
from usagemeter_api.schemas.operations import Conversions, HealthDetails, WorkersReport, WorkerThresholds

__all__ = ["SystemView", "SystemViews"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemView:
    """What every user's dashboard shows alike, as of one moment."""

    conversions: Conversions
    workers: WorkersReport
    health: HealthDetails


class SystemViews:
    """The system view, read anew at most every ``ttl_seconds`` (0 reads it on every call).

    A view between one and two lifetimes old is still served while one request's
    background read replaces it, so under steady traffic no request waits for the reads;
    an older one (or none) is read before answering.
    """

    def __init__(self, pool: ClientPool, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: tuple[float, tuple[object, ...], SystemView] | None = None
        self._refreshing: asyncio.Task[SystemView] | None = None
        self._probes = CollectorProbes()

    def probe_collectors(self, health: HealthThresholds) -> list[CollectorProbe]:
        """Ask the configured collectors' health now (blocking), naming a silent URL by the instance it last gave."""
        return self._probes.probe(health.collector_urls, health.collector_token)

    async def current(self, now: datetime, workers: WorkerThresholds, health: HealthThresholds) -> SystemView:
        """The view as of ``now``, or as of a moment at most two ``ttl_seconds`` earlier."""
        key = (workers, health)
        cached = self._cached
        if cached is None or cached[1] != key:
            return await self._refresh(now, workers, health)
        age = self._clock() - cached[0]
        if age < self._ttl:
            return cached[2]
        if age < 2 * self._ttl:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.create_task(self._refresh(now, workers, health))
                self._refreshing.add_done_callback(_log_failure)
            return cached[2]
        return await self._refresh(now, workers, health)

    async def _refresh(self, now: datetime, workers: WorkerThresholds, health: HealthThresholds) -> SystemView:
        view = await self._read(now, workers, health)
        self._cached = (self._clock(), (workers, health), view)
        return view

    async def settled(self) -> None:
        """Wait for a background read in flight, if any (it may have failed)."""
        if self._refreshing is not None:
            await asyncio.wait([self._refreshing])

    async def _read(self, now: datetime, workers: WorkerThresholds, health: HealthThresholds) -> SystemView:
        pool = self._pool
        report, converted, newest, collectors, probes = await asyncio.gather(
            pool.call(worker_report, now, workers),
            pool.call(conversions, now),
            pool.call(newest_point, now),
            pool.call(collector_reports, now),
            asyncio.to_thread(self.probe_collectors, health),
        )
        return SystemView(
            conversions=converted,
            workers=report,
            health=health_details(newest, now, health, report, collectors, probes),
        )


def _log_failure(task: asyncio.Task[SystemView]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("reading the dashboard's system view failed: %s", task.exception())
