"""The collector's settings (``USAGEMETER_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from usagemeter_clickhouse.settings import StorageSettings, comma_separated
from usagemeter_collector._checks.cumulative import DEFAULT_MAX_SERIES
from usagemeter_collector._checks.rule import DEFAULT_MAX_ID_BYTES, DEFAULT_MAX_POINT_VALUE
from usagemeter_collector._spool.state import StateLimits

#: Beyond this a Float64 no longer holds every integer, so a larger cap would let totals drift.
_LARGEST_EXACT_INTEGER = float(2**53)
#: The defaults of the spool state's bounds, which the settings below set.
_STATE_LIMITS = StateLimits()


class CollectorSettings(StorageSettings):
    """Where the OTLP receivers listen, where the spool lives and how rows are batched. Port 0 picks a free port.

    ``data_dir`` and ``raw_retention_days`` come from :class:`StorageSettings`, shared with
    :class:`~usagemeter_clickhouse.settings.ClickHouseSettings`.
    """

    host: str = Field(default="127.0.0.1", description="Address both receivers bind.")
    grpc_port: int = Field(default=4317, ge=0, le=65535, description="OTLP/gRPC port.")
    http_port: int = Field(default=4318, ge=0, le=65535, description="OTLP/HTTP port.")
    spool_dir: Path | None = Field(
        default=None, description="Directory of the durable spool (default <data_dir>/spool)."
    )
    spool_max_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024 * 1024, description="Spool size past which requests get 503/UNAVAILABLE."
    )
    spool_segment_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Size at which a spool segment is sealed and handed to the writer.",
    )
    batch_max_delay_seconds: float = Field(
        default=0.5, gt=0, description="Longest time a spooled record waits before its segment is sealed and inserted."
    )
    batch_max_rows: int = Field(default=100_000, ge=1, description="Most rows of one table in one insert.")
    retry_initial_seconds: float = Field(default=0.2, gt=0, description="First wait after a failed insert.")
    retry_max_seconds: float = Field(default=30.0, gt=0, description="Longest wait between insert attempts.")
    dedup_window_seconds: float = Field(
        default=600.0, ge=0, description="How long an acknowledged request's content hash makes its resend a no-op."
    )
    dedup_max_hashes: int = Field(
        default=_STATE_LIMITS.max_hashes,
        ge=1,
        description="Most request hashes kept for resend detection; the oldest go first.",
    )
    cumulative_max_series: int = Field(
        default=DEFAULT_MAX_SERIES,
        ge=1,
        description="Most cumulative series tracked; points of new series beyond it are refused (partial success).",
    )
    cumulative_series_ttl_seconds: float = Field(
        default=_STATE_LIMITS.series_ttl_seconds,
        gt=0,
        description="A cumulative series not updated for this long is forgotten; its next point starts a new run.",
    )
    max_future_seconds: int = Field(
        default=300, ge=0, description="Clock skew allowed to senders: points further ahead than this are rejected."
    )
    max_point_value: float = Field(
        default=DEFAULT_MAX_POINT_VALUE,
        gt=0,
        le=_LARGEST_EXACT_INTEGER,
        description="Largest feature.usage value of one point (delta or cumulative); larger ones are rejected.",
    )
    max_id_bytes: int = Field(
        default=DEFAULT_MAX_ID_BYTES,
        ge=1,
        le=65_536,
        description="Longest user.id and feature.key of a feature.usage point in UTF-8 bytes; longer are rejected.",
    )
    ingest_tokens: str = Field(
        default="", description="Comma-separated bearer tokens accepted on ingest; empty accepts every sender."
    )
    clickhouse_format_schema: str = Field(
        default="",
        description=(
            "Format schema file ClickHouse decodes spooled metrics requests with: empty uses the absolute path of the "
            "otlp_metrics.proto shipped with the collector with the embedded engine, and the name otlp_metrics.proto "
            "(looked up in the server's format_schema_path) with a ClickHouse server."
        ),
    )
    protobuf_metrics: bool = Field(
        default=True, description="Let ClickHouse decode metrics requests (false decodes them into rows here)."
    )
    self_telemetry_interval_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How often the collector stores its own telemetry through its ingest; 0 disables it.",
    )
    collector_unsent_degraded_seconds: float = Field(
        default=120,
        gt=0,
        description="GET /health says degraded (unsent_data_old) while the oldest unsent data is older than this; "
        "the API's health details read the same variable.",
    )
    drain_timeout_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long the collector keeps inserting its spool after it stops accepting; "
        "what is left stays spooled for the next start.",
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest accepted request, compressed or not."
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest OTLP/HTTP request line and headers (431 beyond), and largest gRPC metadata.",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time an OTLP/HTTP client has to send a request's line and headers (408)."
    )
    http_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Time an OTLP/HTTP client has to send a request body (408); 60 s lets 16 MiB arrive at 280 KB/s.",
    )
    http_max_connections: int = Field(
        default=1000, ge=1, description="Open OTLP/HTTP connections; at the bound the longest-idle one is closed."
    )
    http_keepalive_seconds: int = Field(
        default=5, ge=1, description="How long an idle OTLP/HTTP keep-alive connection stays open."
    )

    def resolved_spool_dir(self) -> Path:
        """The spool directory: ``spool_dir``, or ``spool`` inside ``data_dir``."""
        return self.spool_dir if self.spool_dir is not None else self.data_dir / "spool"

    def tokens(self) -> tuple[str, ...]:
        """The accepted ingest bearer tokens in the order given, each once (empty: no authentication)."""
        return tuple(dict.fromkeys(comma_separated(self.ingest_tokens)))
