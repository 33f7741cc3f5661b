"""``/health``: unauthenticated liveness with ClickHouse reachability."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request

from usagemeter_api.pool import ClientPool
from usagemeter_api.schemas import Health

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    """``ok`` when ClickHouse answers a query, ``degraded`` otherwise; the process is alive either way."""
    pool: ClientPool = request.app.state.clickhouse_pool
    try:
        with pool.client() as client:
            client.query("SELECT 1")
    except Exception as exc:  # any failure to reach or query ClickHouse is what this endpoint reports
        logger.warning("health check: ClickHouse unreachable: %s", exc)
        return Health(status="degraded", clickhouse="unreachable")
    return Health(status="ok", clickhouse="ok")
