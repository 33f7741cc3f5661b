"""The API's routers."""

from __future__ import annotations

from usagemeter_api.api.routes import admin, analytics, health, operations, quotas

__all__ = ["admin", "analytics", "health", "operations", "quotas"]
