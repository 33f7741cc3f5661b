"""The demo's settings from the environment (``USAGEMETER_DEMO_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from usagemeter.demo._operations import DEFAULT_JOB_FAILURE_RATE
from usagemeter.demo._quota_gate import QuotaGate


class DemoSettings(BaseSettings):
    """``redis_url`` set: report jobs run on an arq worker over that Redis; unset: on an in-process thread.

    ``api_url`` and ``api_token`` (an admin's) set: each use is checked against the user's quota first.
    """

    model_config = SettingsConfigDict(env_prefix="USAGEMETER_DEMO_", extra="ignore")

    redis_url: str | None = None
    job_failure_rate: float = Field(
        default=DEFAULT_JOB_FAILURE_RATE,
        ge=0,
        le=1,
        description="Share of report jobs that fail; above the worker failure ratio (0.2) the worker reads degraded.",
    )
    api_url: str | None = Field(default=None, description="The API's /api/v1 URL, to check quotas before each use.")
    api_token: SecretStr | None = Field(default=None, description="An admin token for the quota checks.")

    def quota_gate(self) -> QuotaGate | None:
        """The quota check to ask before each use, when the API and a token are configured."""
        if not (self.api_url and self.api_token):
            return None
        return QuotaGate(self.api_url, self.api_token.get_secret_value())
