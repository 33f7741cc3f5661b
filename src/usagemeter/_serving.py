"""Running servers inside the command's own event loop, and stopping on signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from functools import partial

import uvicorn

from usagemeter_clickhouse import Client, applied_versions, available_migrations, connect, migrate
from usagemeter_clickhouse.settings import ClickHouseSettings


class SchemaNotReady(Exception):
    """The database lacks migrations this version needs (run ``usagemeter migrate``)."""


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare_schema(settings: ClickHouseSettings) -> Callable[[], Client]:
    """Create the database, apply pending migrations and return a client factory."""
    url, database = settings.resolved_url(), settings.clickhouse_database
    client = connect(url, database, create_database=True)
    try:
        migrate(client, settings.schema_options())
    finally:
        client.close()
    return partial(connect, url, database)


def require_schema(settings: ClickHouseSettings) -> Callable[[], Client]:
    """Return a client factory once the database has every migration applied."""
    factory = partial(connect, settings.resolved_url(), settings.clickhouse_database)
    client = factory()
    try:
        missing = {m.version for m in available_migrations()} - applied_versions(client)
    except Exception as exc:
        raise SchemaNotReady(f"cannot read the schema ledger ({exc}); run `usagemeter migrate`") from exc
    finally:
        client.close()
    if missing:
        raise SchemaNotReady(f"migrations {sorted(missing)} are not applied; run `usagemeter migrate`")
    return factory


async def start_server(server: uvicorn.Server) -> asyncio.Task[None]:
    """Start ``server`` in the running loop and return once it listens."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.05)
    return task


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Ask ``server`` to finish its requests and exit."""
    server.should_exit = True
    with contextlib.suppress(Exception):
        await task


async def until_signalled(*watch: asyncio.Task[None]) -> None:
    """Return on SIGINT or SIGTERM, or when one of the watched tasks ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({stopper, *watch}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
