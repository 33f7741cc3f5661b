"""The collector's settings (``USAGEMETER_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CollectorSettings(BaseSettings):
    """Where the OTLP receivers listen and how rows are batched. Port 0 picks a free port."""

    model_config = SettingsConfigDict(env_prefix="USAGEMETER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address both receivers bind.")
    grpc_port: int = Field(default=4317, ge=0, le=65535, description="OTLP/gRPC port.")
    http_port: int = Field(default=4318, ge=0, le=65535, description="OTLP/HTTP port.")
    batch_max_rows: int = Field(default=50_000, ge=1, description="Rows of one table that trigger an insert.")
    batch_max_delay_seconds: float = Field(default=0.5, gt=0, description="Longest wait of a row before insert.")
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest accepted request, compressed or not."
    )
