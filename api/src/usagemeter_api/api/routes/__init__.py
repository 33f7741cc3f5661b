"""One router per resource, each included by the app under ``/api/v1``."""

from __future__ import annotations

from usagemeter_api.api.routes import admin, analytics, health, operations, quotas

__all__ = ["admin", "analytics", "health", "operations", "quotas"]
