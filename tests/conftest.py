"""Shared fixtures: one embedded ClickHouse engine per test process, one database per test.

chDB hosts a single engine path per process, so isolation between tests is by
database. Tests that start the all-in-one process get their own data directory.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.clickhouse_server import ClickHouseServer, cluster_config
from usagemeter_clickhouse import Client, connect, embedded_url, migrate

T = TypeVar("T")

#: Name of the two-shard cluster the cluster fixtures form.
CLUSTER = "usagemeter_pair"


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of this test process's embedded engine."""
    return embedded_url(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def database() -> str:
    """A database name unique to the test."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clickhouse(chdb_url: str, database: str) -> Iterator[Client]:
    """A migrated database of its own on the real embedded engine."""
    client = connect(chdb_url, database, create_database=True)
    migrate(client)
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy or the deadline passes; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory for a process under test."""
    path = tmp_path / "data"
    path.mkdir()
    return path


class ServerFactory:
    """Starts ClickHouse server processes for one test or session, and stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[ClickHouseServer] = []

    def server(self, **config: object) -> ClickHouseServer:
        """A started server of its own."""
        server = ClickHouseServer(self.root / f"server{len(self.servers)}", free_port(), free_port(), **config)  # type: ignore[arg-type]
        self.servers.append(server)
        server.start()
        return server

    def cluster(self, shards: int = 2, profile: dict[str, str] | None = None) -> list[ClickHouseServer]:
        """Started servers forming the cluster named ``CLUSTER``, one shard each (``profile``: see ClickHouseServer)."""
        first = len(self.servers)
        members = [
            ClickHouseServer(
                self.root / f"server{first + i}",
                free_port(),
                free_port(),
                macros={"shard": str(i + 1)},
                profile=dict(profile or {}),
            )
            for i in range(shards)
        ]
        for member in members:
            member.remote_servers = cluster_config(CLUSTER, members)
            self.servers.append(member)
        for member in members:
            member.start()
        return members

    def stop_all(self) -> None:
        """Kill every server: their data is not read again, and a clean stop costs seconds each."""
        for server in self.servers:
            server.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Servers for one test, which may stop, kill and restart them."""
    factory = ServerFactory(tmp_path / "servers")
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def clickhouse_server(session_servers: ServerFactory) -> ClickHouseServer:
    """One real ClickHouse server shared by the session's tests: each test uses a database of its own."""
    return session_servers.server()


@pytest.fixture(scope="session")
def clickhouse_cluster(session_servers: ServerFactory) -> list[ClickHouseServer]:
    """Two real ClickHouse servers forming the two-shard cluster ``CLUSTER``, shared by the session."""
    return session_servers.cluster()


@pytest.fixture
def server_clickhouse(clickhouse_server: ClickHouseServer, database: str) -> Iterator[Client]:
    """A migrated database of its own on the shared ClickHouse server."""
    client = connect(clickhouse_server.url(), database, create_database=True)
    migrate(client)
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()
