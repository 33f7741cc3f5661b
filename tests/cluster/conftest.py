"""One database migrated by ``usagemeter migrate`` on the session's shared two-shard cluster, per module."""

from __future__ import annotations

import uuid

import pytest

from tests.clickhouse_server import ClickHouseServer
from tests.cluster.support import cluster_env
from tests.server.processes import run_migrate


@pytest.fixture(scope="module")
def cluster_database(clickhouse_cluster: list[ClickHouseServer]) -> str:
    """A database prepared on both shards by one ``usagemeter migrate`` run against the first node."""
    database = f"c_{uuid.uuid4().hex[:12]}"
    run_migrate(cluster_env(clickhouse_cluster[0], database))
    return database
