"""The collector and the API as processes of their own (server mode)."""

from __future__ import annotations

import asyncio
import logging

from usagemeter._serving import (
    api_server,
    client_factory,
    limited_collector,
    require_schema,
    start_server,
    stop_server,
    until_signalled,
)
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse.settings import ClickHouseSettings
from usagemeter_collector import CollectorSettings, first_line

logger = logging.getLogger(__name__)


async def run_collector(clickhouse: ClickHouseSettings, settings: CollectorSettings) -> None:
    """Serve OTLP until signalled, then stop accepting and insert the spool for up to ``drain_timeout_seconds``.

    The collector starts whether or not ClickHouse is reachable and migrated: what it acknowledges is
    durable in its spool, which drains once ClickHouse takes inserts.
    """
    await asyncio.to_thread(_check_schema, clickhouse)
    server = not clickhouse.embedded
    collector = limited_collector(client_factory(clickhouse), settings, clickhouse_server=server)
    await collector.start()
    logger.info("collector listening: OTLP/gRPC :%d, OTLP/HTTP :%d", collector.grpc_port, collector.http_port)
    try:
        await until_signalled()
    finally:
        await collector.stop()


def _check_schema(clickhouse: ClickHouseSettings) -> None:
    try:
        require_schema(clickhouse)
    except Exception as exc:  # unreachable, refused or unmigrated: each is retried by the writer
        logger.warning(
            "ClickHouse is not ready (%s); the collector starts anyway, keeps exports in its spool and "
            "retries in the background",
            first_line(exc),
        )


async def run_api(clickhouse: ClickHouseSettings, settings: ApiSettings) -> None:
    """Serve the REST API until signalled."""
    server = api_server(create_app(settings, require_schema(clickhouse)), settings, "info")
    task = await start_server(server)
    try:
        await until_signalled(task)
    finally:
        await stop_server(server, task)
