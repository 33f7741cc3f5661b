"""The demo's settings from the environment (``USAGEMETER_DEMO_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from usagemeter.demo._operations import DEFAULT_JOB_FAILURE_RATE


class DemoSettings(BaseSettings):
    """``redis_url`` set: report jobs run on an arq worker over that Redis; unset: on an in-process thread."""

    model_config = SettingsConfigDict(env_prefix="USAGEMETER_DEMO_", extra="ignore")

    redis_url: str | None = None
    job_failure_rate: float = Field(
        default=DEFAULT_JOB_FAILURE_RATE,
        ge=0,
        le=1,
        description="Share of report jobs that fail; above the worker failure ratio (0.2) the worker reads degraded.",
    )
