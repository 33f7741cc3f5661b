"""A shard down for 20 s during ingest: collectors keep acknowledging, the live shard's users keep their quotas,
and once the shard is back every total is exact."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx

from tests.cluster.support import cluster_env, local_usage, quota_used, token
from tests.cluster.test_cluster_pipeline import USERS, wait_for_used
from tests.conftest import ServerFactory
from tests.server.processes import Collector, run_migrate, start_api, start_collector
from tests.server.test_server_pipeline import send_usage

OUTAGE_SECONDS = 20


def spooled(collector: Collector) -> bool:
    """Whether the collector holds acknowledged data not yet in ClickHouse."""
    return "\nusagemeter_collector_spool_bytes 0\n" not in collector.metrics()


def test_a_shard_down_during_ingest_loses_nothing_and_the_live_shards_quotas_keep_answering(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    live, down = server_factory.cluster()
    run_migrate(cluster_env(live, database))
    collectors = [
        start_collector(cluster_env(s, database), tmp_path / f"c{n}", f"c{n}") for n, s in enumerate((live, down))
    ]
    # One API reads quotas per user from ClickHouse, so each read asks only the user's shard; the other answers
    # from its in-memory view (the default). Both trust their plan catalog for longer than the outage.
    per_user = start_api(cluster_env(live, database, quota_live_usage="false", plans_cache_seconds="60"), tmp_path, "a")
    in_memory = start_api(cluster_env(live, database, plans_cache_seconds="60"), tmp_path, "b")
    apis = [per_user, in_memory]
    expected: Counter[str] = Counter()
    try:
        for collector in collectors:
            uses = dict.fromkeys(USERS, 2)
            send_usage(collector.grpc_endpoint, uses)
            expected.update(uses)
        for collector in collectors:
            collector.wait_drained()
        wait_for_used(apis, {user: float(total) for user, total in expected.items()})
        on_live = local_usage(live, database, "feature_usage_day_local")
        before = dict(expected)
        # A plan change now makes each API's catalog fresh as the outage starts.
        admin = {"authorization": f"Bearer {token('operator', admin=True)}"}
        for api in apis:
            moved = httpx.put(f"{api.base}/admin/users/{USERS[0]}/plan", json={"plan_id": "pro"}, headers=admin)
            assert moved.is_success, moved.text

        down.stop()
        stopped = time.monotonic()
        round_ = 0
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            round_ += 1
            for collector in collectors:
                uses = {user: round_ % 3 + 1 for user in USERS}
                send_usage(collector.grpc_endpoint, uses)  # acknowledged, or it raises
                expected.update(uses)
            for api in apis:
                for user in on_live:
                    answer = quota_used(api.base, user)
                    assert answer.status_code == 200, (api.name, answer.text)
                    assert before[user] <= answer.json()["used"] <= expected[user]
            time.sleep(2)
        assert all(spooled(collector) for collector in collectors)
        down.start()

        for collector in collectors:
            collector.wait_drained(timeout=120)
        wait_for_used(apis, {user: float(total) for user, total in expected.items()})
        assert local_usage(down, database, "feature_usage_day_local"), "the restarted shard holds its users"
        assert round_ >= 2
    finally:
        for service in [*collectors, *apis]:
            assert service.stop() == 0, service.output()[-3000:]
