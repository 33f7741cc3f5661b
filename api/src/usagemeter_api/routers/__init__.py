"""The API's routers."""

from __future__ import annotations

from usagemeter_api.routers import analytics, health, quotas

__all__ = ["analytics", "health", "quotas"]
