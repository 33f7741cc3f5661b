"""Production on a two-shard cluster: collectors and APIs on different nodes, usage exact wherever it is read."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx

from tests.clickhouse_server import ClickHouseServer
from tests.cluster.support import FEATURE, cluster_env, local_usage, quota_used
from tests.server.processes import Api, start_api, start_collector, token
from tests.server.senders import send_usage

USERS = [f"member-{n:02d}" for n in range(16)]


def wait_for_used(apis: list[Api], expected: dict[str, float], timeout: float = 60) -> None:
    """Wait until every API answers every user's exact quota usage; fail with the last answers otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        answers = {(api.name, user): quota_used(api.base, user).json().get("used") for api in apis for user in expected}
        wrong = {key: used for key, used in answers.items() if used != expected[key[1]]}
        if not wrong:
            return
        assert time.monotonic() < deadline, f"not exact: {wrong}"
        time.sleep(0.5)


def test_usage_is_exact_through_two_collectors_and_two_apis_on_different_nodes(
    clickhouse_cluster: list[ClickHouseServer], cluster_database: str, tmp_path: Path
) -> None:
    envs = [cluster_env(server, cluster_database) for server in clickhouse_cluster]
    collectors = [start_collector(env, tmp_path / f"collector{n}", f"collector{n}") for n, env in enumerate(envs)]
    apis = [start_api(env, tmp_path, f"api{n}") for n, env in enumerate(envs)]
    try:
        expected: Counter[str] = Counter()
        for round_ in range(3):
            for n, collector in enumerate(collectors):
                uses = {user: 1 + (i + round_ + n) % 5 for i, user in enumerate(USERS)}
                send_usage(collector.grpc_endpoint, uses)
                expected.update(uses)
        for collector in collectors:
            collector.wait_drained()
        wait_for_used(apis, {user: float(total) for user, total in expected.items()})
        per_shard = [local_usage(server, cluster_database, "usage_day_local") for server in clickhouse_cluster]
        assert all(per_shard), "both shards hold some users' usage"
        assert not set(per_shard[0]) & set(per_shard[1]), "a user's usage lives on one shard"
        assert_every_read_answers(apis, USERS[0], expected[USERS[0]])
    finally:
        for service in [*collectors, *apis]:
            assert service.stop() == 0, service.output()[-3000:]


def assert_every_read_answers(apis: list[Api], user: str, used: int) -> None:
    """The API's other reads (analytics, dashboards, workers, plans) work through the Distributed tables."""
    admin = {"authorization": f"Bearer {token('operator', admin=True)}"}
    mine = {"authorization": f"Bearer {token(user)}"}
    moved = httpx.put(f"{apis[0].base}/admin/users/{user}/plan", json={"plan_id": "pro"}, headers=admin, timeout=30)
    assert moved.status_code == 200, moved.text
    for api in apis:
        for period in ("today", "week", "month"):
            report = httpx.get(f"{api.base}/analytics/usage/{FEATURE}?period={period}", headers=mine, timeout=30)
            assert report.status_code == 200, report.text
            assert report.json()["total"] == used
        for path in ("/quotas", f"/analytics/usage/{FEATURE}/breakdown", "/analytics/dashboard-metrics", "/workers"):
            assert httpx.get(api.base + path, headers=mine, timeout=30).status_code == 200, path
        for path in ("/admin/plans", "/admin/users/near-limit", "/health/details"):
            assert httpx.get(api.base + path, headers=admin, timeout=30).status_code == 200, path
    deadline = time.monotonic() + 30
    while quota_used(apis[1].base, user).json()["limit"] != 2000:
        assert time.monotonic() < deadline, "the other API never saw the plan change"
        time.sleep(0.5)
