"""The API's settings, read from ``USAGEMETER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from usagemeter_api.core.security import MIN_SECRET_BYTES
from usagemeter_api.errors import SettingsError
from usagemeter_clickhouse.settings import settings_problem

__all__ = ["ApiSettings", "load_settings"]

_ENV_PREFIX = "USAGEMETER_"


class ApiSettings(BaseSettings):
    """How the REST API authenticates callers, where it listens and which plans it enforces."""

    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, extra="ignore")

    jwt_secret: SecretStr = Field(
        default=SecretStr(""),
        description=f"HS256 signing secret, at least {MIN_SECRET_BYTES} bytes; may be unset when a JWKS URL is set.",
    )
    jwt_jwks_url: HttpUrl | None = Field(default=None, description="JWKS URL whose keys verify RS256 tokens.")
    jwt_jwks_cache_seconds: float = Field(
        default=300, gt=0, le=86400, description="How long the fetched JWKS is reused before it is fetched again."
    )
    jwt_audience: str | None = Field(default=None, description="Required `aud` claim when set.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` claim when set.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request line and headers (431 beyond)."
    )
    api_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time a client has to send a request's line and headers (408)."
    )
    api_body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time a client has to send a request body (408); API bodies are small."
    )
    api_max_connections: int = Field(
        default=1000, ge=1, description="Open connections; at the bound the longest-idle one is closed."
    )
    api_keepalive_seconds: int = Field(
        default=5, ge=1, description="How long an idle keep-alive connection stays open."
    )
    plans_file: Path | None = Field(default=None, description="Plans TOML file; the shipped plans when unset.")
    clickhouse_pool_size: int = Field(
        default=16, ge=1, le=256, description="Idle ClickHouse clients kept for reuse by requests."
    )
    plans_cache_seconds: float = Field(
        default=1.0, ge=0, le=60, description="How long a process trusts its copy of the plans before rechecking."
    )
    quota_cache_seconds: float = Field(
        default=0.5, ge=0, le=60, description="How long the quota check reuses a period usage total (0 disables)."
    )
    dashboard_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long dashboards reuse conversions, worker status and system health (0 reads them each time).",
    )
    rollup_retention_days: int = Field(
        default=400,
        ge=1,
        description="Days the usage rollups keep (as migrated): the oldest a correction may count at.",
    )
    max_future_seconds: int = Field(
        default=300,
        ge=0,
        description="The collectors' allowed clock skew (as they are set): how far ahead of the clock usage may "
        "count, which bounds the in-memory view's reads of minutes leaving a rolling window.",
    )
    quota_live_usage: bool = Field(
        default=True,
        description="Answer quotas from an in-memory view of the current periods kept current from ClickHouse.",
    )
    quota_live_refresh_seconds: float = Field(
        default=0.25, gt=0, le=10, description="How often the in-memory quota view reads newly ingested usage."
    )
    quota_max_staleness_seconds: float = Field(
        default=300,
        ge=0,
        le=86400,
        description=(
            "While ClickHouse cannot be read, quotas answer from the usage last read (stale) for at most this long,"
            " then 503; 0 never answers stale."
        ),
    )
    worker_degraded_after_seconds: float = Field(
        default=120, gt=0, description="A worker whose last heartbeat is older than this is degraded."
    )
    worker_down_after_seconds: float = Field(
        default=300, gt=0, description="A worker whose last heartbeat is older than this is down."
    )
    worker_failure_ratio: float = Field(
        default=0.2, gt=0, le=1, description="Failed / finished jobs in the window above which a worker is degraded."
    )
    worker_queue_growth: int = Field(
        default=100, ge=1, description="Jobs a queue may grow by within the window before it is degraded."
    )
    worker_window_seconds: int = Field(
        default=900, ge=60, le=86400, description="The recent window for job counts, failure ratio and queue growth."
    )
    ingest_stale_after_seconds: float = Field(
        default=300, gt=0, description="Ingest is unhealthy when the newest stored point is older than this."
    )
    collector_stale_after_seconds: float = Field(
        default=60, gt=0, description="A collector whose last self-report is older than this is down."
    )
    collector_backlog_degraded_bytes: float = Field(
        default=256 * 1024 * 1024, gt=0, description="A collector whose spool backlog exceeds this is degraded."
    )
    collector_unsent_degraded_seconds: float = Field(
        default=120, gt=0, description="A collector whose oldest unsent data is older than this is degraded."
    )
    collector_urls: str = Field(
        default="",
        description="Comma-separated OTLP/HTTP base URLs of collectors (http://collector:4318) whose GET /health "
        "the health details include; empty: collectors are known from their self-telemetry only.",
    )
    collector_token: SecretStr = Field(
        default=SecretStr(""),
        description="One of the collectors' ingest tokens, sent on their GET /health so that they add ClickHouse's "
        "error text to the reason codes; empty: codes only.",
    )

    webhooks: bool = Field(
        default=True, description="Detect threshold crossings and send them to the registered webhook endpoints."
    )
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Let webhook endpoints on loopback and private addresses in (development and tests only: "
        "otherwise an admin token could make the API reach internal services).",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long a webhook receiver has to answer before the attempt fails."
    )
    webhook_detect_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often the leading replica looks for threshold crossings."
    )
    webhook_sweep_users: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Users re-evaluated per detection pass besides those whose usage moved (finds crossings made "
        "by plan or grant changes, or while no API ran).",
    )
    replica_heartbeat_seconds: float = Field(
        default=2.0, gt=0, le=60, description="How often each API replica writes its heartbeat."
    )
    replica_expire_seconds: float = Field(
        default=10.0, gt=0, le=600, description="A replica not seen for this long is dropped; its events go to others."
    )

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr) -> SecretStr:
        # RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
        if value.get_secret_value() and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes long")
        return value

    @model_validator(mode="after")
    def _some_key_is_configured(self) -> ApiSettings:
        if not self.jwt_secret.get_secret_value() and self.jwt_jwks_url is None:
            raise ValueError(
                f"{_ENV_PREFIX}JWT_SECRET is required (HS256), unless {_ENV_PREFIX}JWT_JWKS_URL is set (RS256)"
            )
        return self


def load_settings() -> ApiSettings:
    """Read :class:`ApiSettings` from the environment, or raise SettingsError naming each bad variable."""
    try:
        return ApiSettings()
    except ValidationError as exc:
        raise SettingsError("invalid API configuration: " + settings_problem(exc, _ENV_PREFIX)) from exc
