"""``/health``: unauthenticated liveness, ClickHouse reachability and, in ``usagemeter up``, the spool."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request

from usagemeter_api.api.deps import services_of
from usagemeter_api.schemas.operations import CollectorHealth, Health

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/health", response_model=Health, response_model_exclude_unset=True)
def health(request: Request) -> Health:
    """``ok`` when ClickHouse answers a query and the collector (if in this process) can spool; ``degraded``
    otherwise, with the collector's reasons; the process is alive either way."""
    services = services_of(request)
    provider = services.collector_status
    collector = None if provider is None else CollectorHealth.model_validate(provider())
    degraded = collector is not None and bool(collector.reasons)
    extra = {"collector": collector} if collector is not None else {}
    try:
        with services.pool.client() as client:
            client.query("SELECT 1")
    except Exception as exc:  # any failure to reach or query ClickHouse is what this endpoint reports
        logger.warning("health check: ClickHouse unreachable: %s", exc)
        return Health(status="degraded", clickhouse="unreachable", **extra)
    return Health(status="degraded" if degraded else "ok", clickhouse="ok", **extra)
