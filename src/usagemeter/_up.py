"""The all-in-one process: schema, collector, API and (optionally) demo traffic.

In embedded mode the chDB data directory can be opened by one process only,
so the collector and the API share this process and one event loop; each
opens its own clients on the one engine through the same factory.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from usagemeter._serving import (
    api_server,
    limited_collector,
    prepare_schema,
    start_server,
    stop_server,
    until_signalled,
)
from usagemeter.demo import DEFAULT_USERS
from usagemeter_api import ApiSettings, create_app
from usagemeter_api.core.security import mint_token
from usagemeter_clickhouse.settings import ClickHouseSettings
from usagemeter_collector import Collector, CollectorSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpOptions:
    """Everything ``usagemeter up`` runs with, resolved at the command line."""

    clickhouse: ClickHouseSettings
    collector: CollectorSettings
    api: ApiSettings
    demo: bool = False


async def run_up(options: UpOptions, *, announce: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM, then stop the demo, the API and the collector in order."""
    factory = prepare_schema(options.clickhouse)
    collector = limited_collector(factory, options.collector, clickhouse_server=not options.clickhouse.embedded)
    # /api/v1/health reports the spool of the collector sharing this process (degraded while it cannot write).
    app = create_app(options.api, factory, collector_status=collector.status)
    api = api_server(app, options.api, "warning")
    await collector.start()
    demo: subprocess.Popen[bytes] | None = None
    try:
        api_task = await start_server(api)
        try:
            if options.demo:
                demo = _start_demo(options.collector, collector.grpc_port)
            announce(_banner(options, collector, demo is not None))
            await until_signalled(api_task)
        finally:
            _stop_demo(demo)
            await stop_server(api, api_task)
    finally:
        await collector.stop()


def _start_demo(settings: CollectorSettings, grpc_port: int) -> subprocess.Popen[bytes]:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    endpoint = f"http://{host}:{grpc_port}"
    return subprocess.Popen([sys.executable, "-m", "usagemeter", "demo", "--endpoint", endpoint])


def _stop_demo(demo: subprocess.Popen[bytes] | None) -> None:
    if demo is None or demo.poll() is not None:
        return
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(timeout=10)
    except subprocess.TimeoutExpired:
        demo.kill()


def _banner(options: UpOptions, collector: Collector, demo: bool) -> str:
    api = options.api
    host = options.collector.host
    secret = api.jwt_secret.get_secret_value()
    admin = mint_token(secret, "admin", admin=True, audience=api.jwt_audience, issuer=api.jwt_issuer)
    lines = [
        "usagemeter is up",
        f"  OTLP/gRPC   {host}:{collector.grpc_port}",
        f"  OTLP/HTTP   http://{host}:{collector.http_port}/v1/metrics  /v1/traces",
        f"  API         http://{api.api_host}:{api.api_port}/api/v1   (OpenAPI: /docs)",
        f"  data        {options.clickhouse.resolved_url()} database {options.clickhouse.clickhouse_database}",
        "",
        "Admin token (24 h):",
        f"  {admin}",
    ]
    if demo:
        user = DEFAULT_USERS[0]
        token = mint_token(secret, user, audience=api.jwt_audience, issuer=api.jwt_issuer)
        lines += [
            f"Demo traffic is running for {', '.join(DEFAULT_USERS)}. Token for {user}:",
            f"  {token}",
            f"  curl -H 'Authorization: Bearer {token}' http://{api.api_host}:{api.api_port}/api/v1/quotas",
        ]
    lines.append("More tokens: usagemeter token --data-dir DIR --user USER [--admin].  Stop with Ctrl-C.")
    return "\n".join(lines)
