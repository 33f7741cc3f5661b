"""The all-in-one process: schema, collector, API and (optionally) demo traffic.

In embedded mode the chDB data directory can be opened by one process only,
so the collector and the API share this process and one event loop; each
opens its own clients on the one engine through the same factory.
"""

from __future__ import annotations

import asyncio
import logging
import os
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
from usagemeter.demo import DEFAULT_USERS, demo_users
from usagemeter_api import ApiSettings, create_app
from usagemeter_api.core.security import mint_token
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.errors import UnknownPlan
from usagemeter_api.services import Services
from usagemeter_clickhouse import Client
from usagemeter_clickhouse.settings import ClickHouseSettings
from usagemeter_collector import Collector, CollectorSettings

logger = logging.getLogger(__name__)

#: Who the demo host checks quotas as (an admin naming each user), and for how long its token lasts:
#: longer than a day, so a demo left running keeps honouring the limits.
DEMO_HOST_USER = "demo-chat-backend"
DEMO_HOST_TOKEN_SECONDS = 30 * 86400


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
                services: Services = app.state.services
                await services.pool.call(assign_demo_plans, services.plan_store)
                demo = _start_demo(options, collector.grpc_port)
            announce(_banner(options, collector, demo is not None))
            await until_signalled(api_task)
        finally:
            # Off the event loop: while the demo winds down, its last quota checks and its final
            # flush still need the API and the collector, which share this loop.
            await asyncio.to_thread(_stop_demo, demo)
            await stop_server(api, api_task)
    finally:
        await collector.stop()


def assign_demo_plans(client: Client, store: PlanStore) -> dict[str, str]:
    """Put each demo user without a plan on their demo profile's plan, as the admin API would; returns who got which.

    A user who has a plan already (from the plans file or an admin) keeps it, and a plan the
    catalog does not have is skipped with a warning, so the demo never overrides a real choice.
    """
    assigned = store.catalog(client).assignments
    done: dict[str, str] = {}
    for user in demo_users(DEFAULT_USERS):
        if user.user_id in assigned:
            continue
        try:
            store.assign(client, user.user_id, user.plan)
        except UnknownPlan as exc:
            logger.warning("demo user %s stays on the default plan: %s", user.user_id, exc)
            continue
        done[user.user_id] = user.plan
    if done:
        logger.info("demo plans: %s", ", ".join(f"{user} on {plan}" for user, plan in done.items()))
    return done


def _reachable(host: str) -> str:
    """An address a local client can connect to, for a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _local_address(api: ApiSettings) -> str:
    """The API's address for a client on this machine."""
    return f"http://{_reachable(api.api_host)}:{api.api_port}"


def _start_demo(options: UpOptions, grpc_port: int) -> subprocess.Popen[bytes]:
    endpoint = f"http://{_reachable(options.collector.host)}:{grpc_port}"
    api = options.api
    # In the environment, not the arguments, so the admin token does not show in the process list.
    env = {
        **os.environ,
        "USAGEMETER_DEMO_API_URL": f"{_local_address(api)}/api/v1",
        "USAGEMETER_DEMO_API_TOKEN": _mint(api, DEMO_HOST_USER, admin=True, ttl_seconds=DEMO_HOST_TOKEN_SECONDS),
    }
    return subprocess.Popen([sys.executable, "-m", "usagemeter", "demo", "--endpoint", endpoint], env=env)


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
    page = f"{_local_address(api)}/"
    user = DEFAULT_USERS[0]
    token = _mint(api, user) if demo else None
    lines = [
        "usagemeter is up",
        f"  OTLP/gRPC   {host}:{collector.grpc_port}",
        f"  OTLP/HTTP   http://{host}:{collector.http_port}/v1/metrics  /v1/traces",
        f"  API         http://{api.api_host}:{api.api_port}/api/v1   (OpenAPI: /docs)",
        f"  usage page  {page}",
    ]
    if token is not None:
        # The token rides in the fragment, which browsers never send, so it stays out of server logs.
        lines.append(f"  sign in     {page}#token={token}   (as {user}, 24 h)")
    lines += [
        f"  data        {options.clickhouse.resolved_url()} database {options.clickhouse.clickhouse_database}",
        "",
        "Admin token (24 h):",
        f"  {_mint(api, 'admin', admin=True)}",
    ]
    if token is not None:
        lines += [
            f"Demo traffic is running for {', '.join(DEFAULT_USERS)}. Token for {user}:",
            f"  {token}",
            f"  curl -H 'Authorization: Bearer {token}' http://{api.api_host}:{api.api_port}/api/v1/quotas",
        ]
    lines.append("More tokens: usagemeter token --data-dir DIR --user USER [--admin].  Stop with Ctrl-C.")
    return "\n".join(lines)


def _mint(api: ApiSettings, user: str, *, admin: bool = False, ttl_seconds: int = 86400) -> str:
    secret = api.jwt_secret.get_secret_value()
    return mint_token(
        secret, user, admin=admin, ttl_seconds=ttl_seconds, audience=api.jwt_audience, issuer=api.jwt_issuer
    )
