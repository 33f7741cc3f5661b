"""The demo's settings from the environment (``USAGEMETER_DEMO_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DemoSettings(BaseSettings):
    """``redis_url`` set: report jobs run on an arq worker over that Redis; unset: on an in-process thread."""

    model_config = SettingsConfigDict(env_prefix="USAGEMETER_DEMO_", extra="ignore")

    redis_url: str | None = None
