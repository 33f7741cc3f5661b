"""The collector and the API as processes of their own (server mode)."""

from __future__ import annotations

import logging

from usagemeter._serving import (
    api_server,
    limited_collector,
    require_schema,
    start_server,
    stop_server,
    until_signalled,
)
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse.settings import ClickHouseSettings
from usagemeter_collector import CollectorSettings

logger = logging.getLogger(__name__)


async def run_collector(clickhouse: ClickHouseSettings, settings: CollectorSettings) -> None:
    """Serve OTLP until signalled, then flush what is pending."""
    collector = limited_collector(require_schema(clickhouse), settings)
    await collector.start()
    logger.info("collector listening: OTLP/gRPC :%d, OTLP/HTTP :%d", collector.grpc_port, collector.http_port)
    try:
        await until_signalled()
    finally:
        await collector.stop()


async def run_api(clickhouse: ClickHouseSettings, settings: ApiSettings) -> None:
    """Serve the REST API until signalled."""
    server = api_server(create_app(settings, require_schema(clickhouse)), settings, "info")
    task = await start_server(server)
    try:
        await until_signalled(task)
    finally:
        await stop_server(server, task)
