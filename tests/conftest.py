"""Shared fixtures: one embedded ClickHouse engine per test process, one database per test.

chDB hosts a single engine path per process, so isolation between tests is by
database. Tests that start the all-in-one process get their own data directory.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from usagemeter_clickhouse import Client, connect, embedded_url, migrate


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


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory for a process under test."""
    path = tmp_path / "data"
    path.mkdir()
    return path
