"""A user's usage in a current period: from the in-memory view on the event loop, else from ClickHouse."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from usagemeter_api.live_usage import LiveUsage
from usagemeter_api.periods import Window
from usagemeter_api.pool import ClientPool
from usagemeter_api.usage import usage_totals

__all__ = ["Live", "live_usage", "period_used"]


async def live_usage(request: Request) -> LiveUsage | None:
    """The app's in-memory view of current-period usage, when enabled."""
    live: LiveUsage | None = request.app.state.live_usage
    return live


Live = Annotated[LiveUsage | None, Depends(live_usage)]


async def period_used(
    request: Request, live: LiveUsage | None, user_id: str, feature_keys: list[str], window: Window
) -> dict[str, float]:
    """Uses per feature key of ``user_id`` in ``window``.

    The view answers without leaving the event loop; until it is loaded, and for windows
    it does not hold, ClickHouse is read in the thread pool on a pooled client.
    """
    totals = None if live is None else live.used(user_id, feature_keys, window)
    if totals is not None:
        return totals
    pool: ClientPool = request.app.state.clickhouse_pool
    return await pool.call(usage_totals, user_id, feature_keys, window)
