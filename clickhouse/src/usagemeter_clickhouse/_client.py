"""One factory for ClickHouse clients, embedded (chDB) or server."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from usagemeter_clickhouse._errors import DataDirectoryInUse, SchemaError

logger = logging.getLogger(__name__)

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Session settings of every server client. On a sharded cluster an insert into a Distributed table
#: commits on its shards before it is acknowledged (a spooled batch is deleted only after that, and a
#: retry carries the same deduplication token to the same shards); a query constrained to one user
#: asks only that user's shard; and a query needing a shard that cannot be reached fails instead of
#: answering from the other shards alone (a quota, plan catalog or report short of that shard's rows),
#: whatever the server's profile says. Without Distributed tables none of them changes anything.
SERVER_SETTINGS = {"distributed_foreground_insert": 1, "optimize_skip_unused_shards": 1, "skip_unavailable_shards": 0}

__all__ = ["Client", "check_database_name", "connect", "embedded_url", "release_freed_memory"]


def embedded_url(data_dir: str | os.PathLike[str]) -> str:
    """Return the ``chdb://`` URL of the embedded engine kept under ``data_dir``."""
    path = Path(data_dir).resolve() / "clickhouse"
    return f"chdb://{path}"


def check_database_name(database: str) -> str:
    """Return ``database`` if it is a plain identifier, else raise SchemaError."""
    if not _DATABASE_NAME.match(database):
        raise SchemaError(f"invalid ClickHouse database name {database!r}: use letters, digits and _")
    return database


def connect(url: str, database: str, *, create_database: bool = False) -> Client:
    """Open a client on ``database`` at ``url``.

    ``url`` is ``chdb:///absolute/data/dir`` for the embedded engine or
    ``http(s)://user:password@host:port`` for a server. With
    ``create_database`` the database is created first if it is missing.
    """
    check_database_name(database)
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise SchemaError(f"chdb URL needs a data directory: {url!r}")
        Path(path).mkdir(parents=True, exist_ok=True)
        factory = lambda db: _open_embedded(path, db)  # noqa: E731
    elif parts.scheme in ("http", "https"):
        factory = lambda db: clickhouse_connect.get_client(  # noqa: E731
            interface=parts.scheme,
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=db,
            settings=SERVER_SETTINGS,
        )
    else:
        raise SchemaError(f"unsupported ClickHouse URL scheme {parts.scheme!r}: use chdb:// or http(s)://")
    if create_database:
        bootstrap = factory("default")
        try:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        finally:
            bootstrap.close()
    logger.debug("connecting to ClickHouse database %s at %s", database, parts.scheme)
    return factory(database)


def release_freed_memory(client: Client) -> None:
    """Give the memory the embedded engine has freed back to the operating system (against a server, nothing).

    The engine's allocator keeps freed pages for reuse: after a large insert that is a few
    hundred megabytes the process holds without using, on top of what the next insert needs.
    """
    if client.uri.startswith("chdb:"):
        client.command("SYSTEM JEMALLOC PURGE")


def _open_embedded(path: str, database: str) -> Client:
    try:
        return clickhouse_connect.get_client(interface="chdb", path=path, database=database)
    except Exception as exc:
        if _engine_lock_held(path):
            raise DataDirectoryInUse(f"the data directory {path} is in use by another process") from exc
        raise


def _engine_lock_held(path: str) -> bool:
    """Whether another process holds the engine's lock on ``path``/status.

    The engine's own open error does not say why it failed, so ask the lock.
    """
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
