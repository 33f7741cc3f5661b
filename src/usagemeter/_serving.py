"""Running servers inside the command's own event loop, and stopping on signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from functools import partial

import uvicorn
from fastapi import FastAPI

from usagemeter._limits import ConnectionLimits, server_options
from usagemeter_api import ApiSettings
from usagemeter_clickhouse import Client, applied_versions, available_migrations, connect, migrate_deployment
from usagemeter_clickhouse.settings import ClickHouseSettings
from usagemeter_collector import Collector, CollectorSettings, HostedServer


class SchemaNotReady(Exception):
    """The database lacks migrations this version needs (run ``usagemeter migrate``)."""


def api_server(app: FastAPI, settings: ApiSettings, log_level: str) -> HostedServer:
    """The API's server, bounding what each client may hold by the API's limits."""
    limits = ConnectionLimits(
        max_header_bytes=settings.api_max_header_bytes,
        header_timeout_seconds=settings.api_header_timeout_seconds,
        body_timeout_seconds=settings.api_body_timeout_seconds,
        max_connections=settings.api_max_connections,
        keepalive_seconds=settings.api_keepalive_seconds,
    )
    config = uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_level=log_level, **server_options(limits)
    )
    return HostedServer(config)


def limited_collector(
    client_factory: Callable[[], Client], settings: CollectorSettings, *, clickhouse_server: bool = False
) -> Collector:
    """A collector whose OTLP/HTTP server bounds what each client may hold by the collector's limits
    (``clickhouse_server``: the factory opens a ClickHouse server, not the embedded engine)."""
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_seconds=settings.http_header_timeout_seconds,
        body_timeout_seconds=settings.http_body_timeout_seconds,
        max_connections=settings.http_max_connections,
        keepalive_seconds=settings.http_keepalive_seconds,
    )
    options = server_options(limits)
    return Collector(client_factory, settings, http_server_options=options, clickhouse_server=clickhouse_server)


def prepare_schema(settings: ClickHouseSettings) -> Callable[[], Client]:
    """Create the database, apply pending migrations (on every host of a cluster) and return a client factory."""
    migrate_deployment(
        settings.resolved_url(), settings.clickhouse_database, settings.schema_options(), settings.host_urls()
    )
    return client_factory(settings)


def client_factory(settings: ClickHouseSettings) -> Callable[[], Client]:
    """Opens a client on the configured database (each call a new one)."""
    return partial(connect, settings.resolved_url(), settings.clickhouse_database)


def require_schema(settings: ClickHouseSettings) -> Callable[[], Client]:
    """Return a client factory once the database has every migration applied."""
    factory = client_factory(settings)
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
