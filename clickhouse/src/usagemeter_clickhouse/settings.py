"""ClickHouse settings shared by every service (``USAGEMETER_*`` variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from usagemeter_clickhouse._client import embedded_url
from usagemeter_clickhouse._dimensions import check_dimension_attributes
from usagemeter_clickhouse._errors import SchemaError
from usagemeter_clickhouse._render import SchemaOptions


class StorageSettings(BaseSettings):
    """The settings the collector shares with ClickHouse's: where the data lives and how long raw data is kept."""

    model_config = SettingsConfigDict(env_prefix="USAGEMETER_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".usagemeter"),
        description="Data directory: the embedded engine's data, and the collector's spool in its spool/ by default.",
    )
    raw_retention_days: int = Field(
        default=30, ge=1, description="Days raw metrics and spans are kept; the collector rejects older points."
    )
    dimension_attributes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated attributes usage may be sliced by (at most 16; migrate writes them into "
        "usage_dimensions on every host).",
    )

    @field_validator("dimension_attributes", mode="before")
    @classmethod
    def _dimension_names(cls, value: Any) -> tuple[str, ...]:
        names = comma_separated(value) if isinstance(value, str) else list(value)
        try:
            return check_dimension_attributes(names)
        except SchemaError as exc:
            raise ValueError(str(exc)) from exc


class ClickHouseSettings(StorageSettings):
    """Where the data lives and how long it is kept.

    ``clickhouse_url`` unset means the embedded engine in ``data_dir``.
    """

    clickhouse_url: str | None = Field(default=None, description="chdb:///dir or http(s)://user:pass@host:8123")
    clickhouse_database: str = "usagemeter"
    clickhouse_cluster: str | None = Field(
        default=None, description="Cluster (in the servers' remote_servers) whose shards hold the data."
    )
    clickhouse_replicated: bool = Field(
        default=False, description="Replicated* engines and ON CLUSTER DDL through Keeper (needs the cluster)."
    )
    clickhouse_hosts: str = Field(
        default="",
        description="Comma-separated http(s)://host:port of every cluster host, when migrate cannot derive them.",
    )
    rollup_retention_days: int = Field(default=400, ge=1)

    def resolved_url(self) -> str:
        """The ClickHouse URL, defaulting to the embedded engine under ``data_dir``."""
        return self.clickhouse_url or embedded_url(self.data_dir)

    @property
    def embedded(self) -> bool:
        return self.resolved_url().startswith("chdb:")

    def schema_options(self) -> SchemaOptions:
        return SchemaOptions(
            raw_retention_days=self.raw_retention_days,
            rollup_retention_days=self.rollup_retention_days,
            cluster=self.clickhouse_cluster,
            replicated=self.clickhouse_replicated,
            dimension_attributes=self.dimension_attributes,
        )

    def host_urls(self) -> list[str]:
        """The cluster hosts named by ``clickhouse_hosts`` (empty: read them from the cluster)."""
        return comma_separated(self.clickhouse_hosts)


def comma_separated(text: str) -> list[str]:
    """The items of a comma-separated setting, stripped, empty ones left out."""
    return [item.strip() for item in text.split(",") if item.strip()]


def settings_problem(exc: ValidationError, env_prefix: str = "USAGEMETER_") -> str:
    """What ``exc`` refused in settings read from ``env_prefix`` variables: one line naming each variable.

    A rule across several variables (a model validator) has no location, so its message names them itself.
    """
    problems = []
    for error in exc.errors():
        if not error["loc"]:
            problems.append(str(error["ctx"].get("error", error["msg"])) if "ctx" in error else error["msg"])
            continue
        variable = env_prefix + "_".join(str(part) for part in error["loc"]).upper()
        reason = "is required" if error["type"] == "missing" else error["msg"]
        problems.append(f"{variable} {reason}")
    return "; ".join(problems)
