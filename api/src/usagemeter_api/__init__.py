"""usagemeter's REST API: quotas, usage analytics and health from the ClickHouse rollups.

Build the app with :func:`create_app`; mint bearer tokens with :func:`mint_token`.
"""

from __future__ import annotations

from usagemeter_api.core.config import ApiSettings, load_settings
from usagemeter_api.core.security import Principal, TokenVerifier, mint_token
from usagemeter_api.domain.plans import Plan, PlanCatalog, load_plans
from usagemeter_api.errors import AuthError, PlansError, SettingsError, UsagemeterApiError
from usagemeter_api.main import API_PREFIX, create_app

__all__ = [
    "API_PREFIX",
    "ApiSettings",
    "AuthError",
    "Plan",
    "PlanCatalog",
    "PlansError",
    "Principal",
    "SettingsError",
    "TokenVerifier",
    "UsagemeterApiError",
    "create_app",
    "load_plans",
    "load_settings",
    "mint_token",
]
