"""What the cluster tests share: the services' environment on a cluster, and reading each shard's own tables."""

from __future__ import annotations

import httpx

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import CLUSTER
from tests.server.processes import server_env, token

FEATURE = "ai_content_generation"


def cluster_env(entry: ClickHouseServer, database: str, **extra: str) -> dict[str, str]:
    """The environment of a service using ``entry`` as its node of the cluster."""
    return server_env(entry.url(), database, clickhouse_cluster=CLUSTER, **extra)


def local_usage(server: ClickHouseServer, database: str, table: str) -> dict[str, float]:
    """Per-user feature totals in the shard's own usage rollup ``table`` on ``server`` alone."""
    answer = server.query(
        f"SELECT UserId, sum(Quantity) FROM `{database}`.{table} WHERE DimensionKey = '' GROUP BY UserId FORMAT TSV"
    )
    return {user: float(total) for user, total in (line.split("\t") for line in answer.splitlines())}


def local_raw_usage(server: ClickHouseServer, database: str) -> dict[str, float]:
    """Per-user usage in the raw sums stored on ``server`` alone, and how many points."""
    answer = server.query(
        f"SELECT Attributes['user.id'], sum(Value) FROM `{database}`.otel_metrics_sum_local "
        f"WHERE MetricName = 'feature.usage' GROUP BY 1 FORMAT TSV"
    )
    return {user: float(total) for user, total in (line.split("\t") for line in answer.splitlines())}


def quota_used(base: str, user: str, feature: str = FEATURE) -> httpx.Response:
    """``GET /quotas/{feature}`` as ``user``."""
    return httpx.get(f"{base}/quotas/{feature}", headers={"authorization": f"Bearer {token(user)}"}, timeout=30)
