"""The dashboard's shared part (conversions, workers, health) is reused for its cache lifetime, its quotas never."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.api.api_support import NOW, bearer, record_usage
from tests.api.test_operations import delta
from usagemeter_api.core.pool import ClientPool
from usagemeter_api.domain.system_health import HealthThresholds
from usagemeter_api.domain.system_view import SystemViews
from usagemeter_api.schemas.operations import WorkerThresholds
from usagemeter_clickhouse import connect

SIGNUP = {"conversion.name": "signup"}
PATH = "/api/v1/analytics/dashboard-metrics"


def _conversions_and_used(api) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    body = api.get(PATH, headers=bearer("alice")).json()
    used = next(q["used"] for q in body["quotas"] if q["feature_key"] == "chat_messages")
    return body["conversions"]["total"], used


@pytest.mark.parametrize(("cache_seconds", "conversions_after"), [(60, 1), (0, 3)])
def test_shared_part_is_reused_within_its_lifetime_and_quotas_are_current(  # type: ignore[no-untyped-def]
    make_api, clickhouse, cache_seconds, conversions_after
) -> None:
    api = make_api(dashboard_cache_seconds=cache_seconds)
    delta(clickhouse, "conversion.count", SIGNUP, NOW - timedelta(hours=1), 1)
    record_usage(clickhouse, [("alice", "chat_messages", NOW - timedelta(hours=1), 4)])
    assert _conversions_and_used(api) == (1, 4)
    delta(clickhouse, "conversion.count", SIGNUP, NOW - timedelta(minutes=30), 2)
    record_usage(clickhouse, [("alice", "chat_messages", NOW - timedelta(minutes=30), 5)])
    assert _conversions_and_used(api) == (conversions_after, 9)


def test_a_stale_view_is_served_while_it_is_read_anew_then_an_old_one_is_read_first(  # type: ignore[no-untyped-def]
    chdb_url, database, clickhouse
) -> None:
    moment = [0.0]
    pool = ClientPool(lambda: connect(chdb_url, database))
    views = SystemViews(pool, ttl_seconds=10, clock=lambda: moment[0])
    workers = WorkerThresholds(
        degraded_after_seconds=120, down_after_seconds=300, failure_ratio=0.2, queue_growth=100, window_seconds=900
    )
    health = HealthThresholds(
        ingest_stale_after_seconds=300, collector_stale_after_seconds=60, collector_backlog_bytes=1
    )

    async def total_at(seconds: float) -> int:
        moment[0] = seconds
        view = await views.current(NOW, workers, health)
        return view.conversions.total

    async def scenario() -> list[int]:
        totals = [await total_at(0)]
        delta(clickhouse, "conversion.count", SIGNUP, NOW - timedelta(hours=1), 2)
        totals.append(await total_at(9))  # fresh enough: reused
        totals.append(await total_at(15))  # stale: served, and read anew behind it
        await views.settled()
        totals.append(await total_at(15))
        delta(clickhouse, "conversion.count", SIGNUP, NOW - timedelta(hours=1), 4)
        totals.append(await total_at(100))  # too old to serve: read before answering
        return totals

    try:
        assert asyncio.run(scenario()) == [0, 0, 0, 2, 6]
    finally:
        pool.close()
