"""``/workers``, ``/health/details`` and ``/analytics/dashboard-metrics``: the operator's view."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from usagemeter_api.api.deps import Admin, ClickHouse, Clock, CurrentUser, Plans, ServicesDep, TargetUser, services_of
from usagemeter_api.api.routes.quotas import plan_grants
from usagemeter_api.domain.periods import period_window
from usagemeter_api.domain.quota_answers import plan_summary, read_plan_quotas
from usagemeter_api.domain.system_health import HealthThresholds, collector_reports, health_details, newest_point
from usagemeter_api.domain.workers import worker_report
from usagemeter_api.schemas.errors import error_responses
from usagemeter_api.schemas.operations import DashboardMetrics, HealthDetails, WorkersReport, WorkerThresholds
from usagemeter_clickhouse.settings import comma_separated

router = APIRouter(tags=["operations"])

_AUTH: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "Missing, expired or invalid bearer token.",
}
_ADMIN: dict[int, str] = _AUTH | {status.HTTP_403_FORBIDDEN: "The token lacks role admin."}


def worker_thresholds(request: Request) -> WorkerThresholds:
    """The worker status thresholds the app was configured with."""
    settings = services_of(request).settings
    return WorkerThresholds(
        degraded_after_seconds=settings.worker_degraded_after_seconds,
        down_after_seconds=settings.worker_down_after_seconds,
        failure_ratio=settings.worker_failure_ratio,
        queue_growth=settings.worker_queue_growth,
        window_seconds=settings.worker_window_seconds,
    )


def health_thresholds(request: Request) -> HealthThresholds:
    """When ingest is stale and when a collector counts as down or degraded."""
    settings = services_of(request).settings
    return HealthThresholds(
        ingest_stale_after_seconds=settings.ingest_stale_after_seconds,
        collector_stale_after_seconds=settings.collector_stale_after_seconds,
        collector_backlog_bytes=settings.collector_backlog_degraded_bytes,
        collector_unsent_after_seconds=settings.collector_unsent_degraded_seconds,
        collector_urls=tuple(comma_separated(settings.collector_urls)),
        collector_token=settings.collector_token,
    )


Thresholds = Annotated[WorkerThresholds, Depends(worker_thresholds)]
HealthLimits = Annotated[HealthThresholds, Depends(health_thresholds)]


@router.get("/workers", response_model=WorkersReport, responses=error_responses(_AUTH, validated=False))
def workers(_: CurrentUser, client: ClickHouse, now: Clock, thresholds: Thresholds) -> WorkersReport:
    """Each worker instance and queue: healthy, degraded or down, with queue size, throughput and failure rate."""
    return worker_report(client, now, thresholds)


@router.get("/health/details", response_model=HealthDetails, responses=error_responses(_ADMIN, validated=False))
def detailed_health(
    _: Admin, client: ClickHouse, now: Clock, thresholds: Thresholds, limits: HealthLimits, services: ServicesDep
) -> HealthDetails:
    """ClickHouse, ingest freshness, collectors and workers, as ``X/Y services healthy`` (role admin).

    Collector instances and their spool backlogs are operators' information; ``GET /health`` is the public summary.
    """
    report = worker_report(client, now, thresholds)
    collectors, probes = collector_reports(client, now), services.system_views.probe_collectors(limits)
    return health_details(newest_point(client, now), now, limits, report, collectors, probes)


@router.get(
    "/analytics/dashboard-metrics",
    response_model=DashboardMetrics,
    responses=error_responses(_AUTH | {status.HTTP_403_FORBIDDEN: "A non-admin asked for another user's data."}),
    tags=["analytics"],
)
async def dashboard_metrics(
    caller: CurrentUser,
    user_id: TargetUser,
    plans: Plans,
    now: Clock,
    thresholds: Thresholds,
    limits: HealthLimits,
    services: ServicesDep,
) -> DashboardMetrics:
    """Conversions, worker status, the user's feature usage against quotas, their plan and system health.

    Conversions, workers and health are shared by every user's dashboard and may be up to
    ``dashboard_cache_seconds`` old; the user's quotas are current. Health lists its services
    (collector instances, spool backlogs) to admins only; users get the counts and the status.
    """
    plan_id, plan = plans.plan_for(user_id)
    window = period_window(plan.period, now)
    grants = plan_grants(services, user_id, plan, now)
    (quotas, _), system = await asyncio.gather(
        read_plan_quotas(services.period_usage, user_id, plan, plans.assigned_at.get(user_id), now, grants),
        services.system_views.current(now, thresholds, limits),
    )
    return DashboardMetrics(
        user_id=user_id,
        plan=plan_summary(plan_id, plan),
        period_start=window.start,
        period_end=window.end,
        quotas=quotas,
        conversions=system.conversions,
        workers=system.workers,
        health=system.health if caller.admin else system.health.model_copy(update={"services": []}),
    )
