"""The services an app is built with, held once per app and read by every route through one dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from usagemeter_api.core.config import ApiSettings
from usagemeter_api.core.pool import ClientPool
from usagemeter_api.core.security import TokenVerifier
from usagemeter_api.domain.grants import GrantStore
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.system_view import SystemViews
from usagemeter_api.domain.usage.cache import UsageCache
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.period import PeriodUsage
from usagemeter_api.domain.webhooks.service import Webhooks

__all__ = ["Services"]


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes answer from, built by :func:`usagemeter_api.create_app`."""

    settings: ApiSettings
    #: The current UTC time (``create_app(clock=...)``, so periods can be tested at any moment).
    clock: Callable[[], datetime]
    pool: ClientPool
    plan_store: PlanStore
    #: The live grants (extra allowance), held in memory for the quota answers.
    grants: GrantStore
    #: The in-memory view of current-period usage; None when ``quota_live_usage`` is off.
    live_usage: LiveUsage | None
    usage_cache: UsageCache
    period_usage: PeriodUsage
    system_views: SystemViews
    token_verifier: TokenVerifier
    #: The status of the collector sharing this process (``usagemeter up``), else None.
    collector_status: Callable[[], object] | None = None
    #: Threshold webhooks; None when turned off (``USAGEMETER_WEBHOOKS=false``).
    webhooks: Webhooks | None = None
