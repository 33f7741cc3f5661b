"""Response bodies of the health, worker, health-detail and dashboard endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from usagemeter_api.schemas.quotas import QUOTA_LIST_EXAMPLE, QuotaList

__all__ = [
    "CollectorHealth",
    "ConversionTotals",
    "Conversions",
    "DashboardMetrics",
    "Health",
    "HealthDetails",
    "QueueStatus",
    "ServiceHealth",
    "Status",
    "WorkerStatus",
    "WorkerThresholds",
    "WorkersReport",
]

Status = Literal["healthy", "degraded", "down"]


class CollectorHealth(BaseModel):
    """The collector sharing the API's process (``usagemeter up``): can its spool write, what did it lose."""

    model_config = ConfigDict(from_attributes=True)

    spool_writable: bool = Field(description="False while the spool cannot write (exports are refused as retryable).")
    spool_unwritable_since: datetime | None = Field(description="When the spool stopped being writable (UTC).")
    spool_last_error: str | None = Field(description="The error of the last failed spool write, e.g. ENOSPC.")
    spool_write_errors: int = Field(description="Failed spool writes since the collector started.")
    spool_records_damaged: int = Field(description="Acknowledged spool records lost to damaged bytes since start.")
    state_files_quarantined: int = Field(description="Damaged spool state files moved aside since start.")
    reasons: list[str] = Field(
        validation_alias="public_reasons",
        description="Why the collector is degraded, errors named by their codes; empty when it is not.",
    )


class Health(BaseModel):
    """Liveness, whether ClickHouse answers and, in the all-in-one process, the collector's spool."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "clickhouse": "ok"}]})

    status: Literal["ok", "degraded"]
    clickhouse: Literal["ok", "unreachable"]
    collector: CollectorHealth | None = Field(
        default=None, description="Present when the collector runs in the API's process (``usagemeter up``)."
    )


class WorkerThresholds(BaseModel):
    """The limits a worker or queue status is judged by (``USAGEMETER_WORKER_*``)."""

    degraded_after_seconds: float
    down_after_seconds: float
    failure_ratio: float
    queue_growth: int
    window_seconds: int


class WorkerStatus(BaseModel):
    """One worker instance on one queue."""

    worker_id: str
    queue: str
    messaging_system: str
    service_name: str
    status: Status
    reasons: list[str] = Field(description="Why the worker is not healthy; empty when it is.")
    last_heartbeat: datetime
    heartbeat_age_seconds: float
    jobs_completed: int | float = Field(description="Jobs completed within the window.")
    jobs_failed: int | float = Field(description="Jobs failed within the window.")
    failure_rate: float | None = Field(description="failed / finished within the window; null when none finished.")
    throughput_per_minute: float = Field(description="Jobs finished per minute over the window.")


class QueueStatus(BaseModel):
    """One queue: its depth, growth and the workers serving it."""

    queue: str
    messaging_system: str
    status: Status
    reasons: list[str]
    depth: int | float | None = Field(description="Jobs waiting at the newest sample; null when never reported.")
    depth_change: int | float | None = Field(description="Depth now minus depth at the start of the window.")
    workers_live: int = Field(description="Workers on the queue that are not down.")
    throughput_per_minute: float
    failure_rate: float | None


_WORKER_EXAMPLE: JsonDict = {
    "worker_id": "worker-1",
    "queue": "emails",
    "messaging_system": "arq",
    "service_name": "backend-worker",
    "status": "healthy",
    "reasons": [],
    "last_heartbeat": "2026-11-15T11:59:40Z",
    "heartbeat_age_seconds": 20.0,
    "jobs_completed": 120,
    "jobs_failed": 2,
    "failure_rate": 0.0164,
    "throughput_per_minute": 8.13,
}


_WORKERS_EXAMPLE: JsonDict = {
    "status": "healthy",
    "generated_at": "2026-11-15T12:00:00Z",
    "thresholds": {
        "degraded_after_seconds": 120,
        "down_after_seconds": 300,
        "failure_ratio": 0.2,
        "queue_growth": 100,
        "window_seconds": 900,
    },
    "workers": [_WORKER_EXAMPLE],
    "queues": [
        {
            "queue": "emails",
            "messaging_system": "arq",
            "status": "healthy",
            "reasons": [],
            "depth": 3,
            "depth_change": -4,
            "workers_live": 1,
            "throughput_per_minute": 8.13,
            "failure_rate": 0.0164,
        }
    ],
}


class WorkersReport(BaseModel):
    """Every worker and queue seen in the last day, with status and the thresholds used."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WORKERS_EXAMPLE]})

    status: Status = Field(description="The worst status of any worker or queue; healthy when there are none.")
    generated_at: datetime
    thresholds: WorkerThresholds
    workers: list[WorkerStatus]
    queues: list[QueueStatus]


class ServiceHealth(BaseModel):
    """One part of the system."""

    name: str
    status: Status
    detail: str


_HEALTH_EXAMPLE: JsonDict = {
    "status": "degraded",
    "summary": "2/3 services healthy",
    "healthy": 2,
    "total": 3,
    "newest_point_age_seconds": 4.2,
    "services": [
        {"name": "clickhouse", "status": "healthy", "detail": "answers queries"},
        {"name": "ingest", "status": "healthy", "detail": "newest point 4.2 s old"},
        {"name": "worker worker-1 (emails)", "status": "degraded", "detail": "heartbeat 150 s old"},
    ],
}


class HealthDetails(BaseModel):
    """ClickHouse, ingest freshness and every worker, as ``X/Y services healthy``."""

    model_config = ConfigDict(json_schema_extra={"examples": [_HEALTH_EXAMPLE]})

    status: Status
    summary: str
    healthy: int
    total: int
    newest_point_age_seconds: float | None = Field(description="Age of the newest stored raw point; null when none.")
    services: list[ServiceHealth]


class ConversionTotals(BaseModel):
    """Conversions all time and in the current calendar month (UTC)."""

    total: int | float
    this_month: int | float


class Conversions(ConversionTotals):
    """Conversions overall and per ``conversion.name``."""

    by_name: dict[str, ConversionTotals]


class DashboardMetrics(QuotaList):
    """Everything the dashboard shows, in one call: the user's quotas and what every dashboard shares."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **QUOTA_LIST_EXAMPLE,
                    "conversions": {
                        "total": 310,
                        "this_month": 42,
                        "by_name": {
                            "signup": {"total": 250, "this_month": 30},
                            "lead": {"total": 60, "this_month": 12},
                        },
                    },
                    "workers": _WORKERS_EXAMPLE,
                    "health": _HEALTH_EXAMPLE,
                }
            ]
        }
    )

    conversions: Conversions
    workers: WorkersReport
    health: HealthDetails
