"""The FastAPI application: quotas, usage analytics and health under ``/api/v1``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from usagemeter_api.api.handlers import install_handlers
from usagemeter_api.api.routes import admin, analytics, corrections, grants, health, operations, quotas, webhooks
from usagemeter_api.core.clock import system_clock
from usagemeter_api.core.config import ApiSettings
from usagemeter_api.core.pool import ClientPool
from usagemeter_api.core.security import TokenVerifier, jwks_client
from usagemeter_api.domain.grants import GrantStore
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import PlanCatalog, load_plans
from usagemeter_api.domain.quota_windows import rolling_minutes
from usagemeter_api.domain.system_view import SystemViews
from usagemeter_api.domain.usage.cache import UsageCache
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.period import PeriodUsage
from usagemeter_api.domain.webhooks.detector import ThresholdDetector
from usagemeter_api.domain.webhooks.endpoints import EndpointStore
from usagemeter_api.domain.webhooks.replicas import Membership
from usagemeter_api.domain.webhooks.sender import WebhookSender
from usagemeter_api.domain.webhooks.service import Webhooks
from usagemeter_api.services import Services
from usagemeter_api.web import router as web_router
from usagemeter_clickhouse import Client

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

logger = logging.getLogger(__name__)


def create_app(
    settings: ApiSettings,
    client_factory: Callable[[], Client],
    *,
    clock: Callable[[], datetime] = system_clock,
    collector_status: Callable[[], object] | None = None,
) -> FastAPI:
    """Build the API; ``client_factory`` opens a ClickHouse client on the usagemeter database.

    ``clock`` tells the current UTC time (periods and ages are computed from it).
    ``collector_status`` reports the collector sharing this process (``usagemeter up``), which
    ``/health`` then includes.
    The plans file is read here, so a bad one fails before the server starts.
    """
    services = _services(settings, client_factory, clock, collector_status)
    pool, live, store, granted = services.pool, services.live_usage, services.plan_store, services.grants

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.reopen()
        store.start(client_factory)
        granted.start(client_factory)
        if live is not None:
            live.start()
        if services.webhooks is not None:
            services.webhooks.start(client_factory)
        yield
        if services.webhooks is not None:
            services.webhooks.close()
        store.close()
        granted.close()
        if live is not None:
            live.close()
        pool.close()

    app = FastAPI(
        title="usagemeter",
        summary="Feature-usage quotas and analytics from OpenTelemetry metrics in ClickHouse.",
        version="0.1.0",
        lifespan=lifespan,
        # Starlette's trailing-slash redirect builds an absolute Location from the Host header,
        # which makes the API an open redirect; a path is served as written or not at all.
        redirect_slashes=False,
    )
    app.state.services = services
    routers = (quotas, analytics, operations, health, admin, grants, corrections, webhooks)
    for router in (module.router for module in routers):
        app.include_router(router, prefix=API_PREFIX)
    # The end-user page lives at the root so a host can link or embed it as is.
    app.include_router(web_router)
    install_handlers(app)
    return app


def _services(
    settings: ApiSettings,
    client_factory: Callable[[], Client],
    clock: Callable[[], datetime],
    collector_status: Callable[[], object] | None,
) -> Services:
    pool = ClientPool(client_factory, size=settings.clickhouse_pool_size)
    seed = load_plans(settings.plans_file)
    store = PlanStore(seed, ttl_seconds=settings.plans_cache_seconds)
    live = _live_usage(settings, client_factory, lambda: rolling_minutes((store.held() or seed).plans.values()))
    cache = UsageCache(settings.quota_cache_seconds, hold_seconds=settings.quota_max_staleness_seconds)
    period_usage = PeriodUsage(live, cache, pool, max_staleness_seconds=settings.quota_max_staleness_seconds)
    granted = GrantStore(clock, interval_seconds=_grant_interval(settings))
    catalog = lambda: store.held() or seed  # noqa: E731
    return Services(
        settings=settings,
        clock=clock,
        pool=pool,
        plan_store=store,
        grants=granted,
        live_usage=live,
        usage_cache=cache,
        period_usage=period_usage,
        system_views=SystemViews(pool, settings.dashboard_cache_seconds),
        token_verifier=_token_verifier(settings),
        collector_status=collector_status,
        webhooks=_webhooks(settings, pool, period_usage, live, catalog, granted, clock),
    )


def _webhooks(
    settings: ApiSettings,
    pool: ClientPool,
    usage: PeriodUsage,
    live: LiveUsage | None,
    catalog: Callable[[], PlanCatalog],
    granted: GrantStore,
    clock: Callable[[], datetime],
) -> Webhooks | None:
    if not settings.webhooks:
        return None
    endpoints = EndpointStore(interval_seconds=max(settings.plans_cache_seconds, 0.5))
    membership = Membership(
        settings.replica_heartbeat_seconds,
        settings.replica_expire_seconds,
        wanted=lambda: bool(endpoints.subscriptions()),
    )
    sender = WebhookSender(
        pool,
        endpoints,
        membership,
        allow_private_targets=settings.webhook_allow_private_targets,
        timeout_seconds=settings.webhook_timeout_seconds,
    )
    detector = ThresholdDetector(
        usage,
        live,
        catalog,
        granted,
        endpoints,
        membership,
        clock,
        interval_seconds=settings.webhook_detect_seconds,
        sweep_users=settings.webhook_sweep_users,
        recorded=sender.wake,
    )
    return Webhooks(endpoints, membership, detector, sender, settings.webhook_allow_private_targets)


def _grant_interval(settings: ApiSettings) -> float:
    # Grants are revalidated as often as the plans; they are always answered from memory, so even
    # without a plan cache (0) they are read in the background, at most twenty times a second.
    return max(settings.plans_cache_seconds / 2, 0.05)


def _live_usage(
    settings: ApiSettings, client_factory: Callable[[], Client], lengths: Callable[[], Iterable[int]]
) -> LiveUsage | None:
    # Loaded in the background from the start (the server does not wait for it), so a process
    # that served no quota read before ClickHouse went away still holds totals to answer from.
    if not settings.quota_live_usage:
        return None
    return LiveUsage(
        client_factory,
        refresh_seconds=settings.quota_live_refresh_seconds,
        # The plans file's lengths until the catalog is read from ClickHouse.
        rolling_minutes=lengths,
        max_future_seconds=settings.max_future_seconds,
    )


def _token_verifier(settings: ApiSettings) -> TokenVerifier:
    url = settings.jwt_jwks_url
    return TokenVerifier(
        settings.jwt_secret.get_secret_value() or None,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        jwks=None if url is None else jwks_client(str(url), cache_seconds=settings.jwt_jwks_cache_seconds),
    )
