"""Spooled metrics requests handed to ClickHouse as length-delimited protobuf.

ClickHouse decodes them itself (``Protobuf`` input format) into the landing
table of each metric kind; materialized views (migration 0008) unnest them
into the raw metric tables.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

#: The message the format schema describes.
MESSAGE = "ExportMetricsServiceRequest"
#: The schema file shipped with the collector; a ClickHouse server reads it from its format_schema_path.
SCHEMA_FILE = "otlp_metrics.proto"

LANDING_TABLES = {
    "gauge": "otel_metrics_landing_gauge",
    "histogram": "otel_metrics_landing_histogram",
    "exponential_histogram": "otel_metrics_landing_exponential_histogram",
    "summary": "otel_metrics_landing_summary",
    "sum": "otel_metrics_landing_sum",
}
#: Insert order: the usage sums last, as with rows.
KIND_ORDER = tuple(LANDING_TABLES)


def bundled_schema_path() -> Path:
    """The absolute path of the format schema shipped with the collector (what the embedded engine reads)."""
    return Path(str(resources.files("usagemeter_collector") / "schema" / SCHEMA_FILE)).resolve()


def format_schema(schema: str | None, *, server: bool = False) -> str:
    """The ``format_schema`` setting: ``schema`` (a path or a name in the server's format_schema_path) and the message.

    By default the embedded engine reads the bundled file by its absolute path, while a ClickHouse server,
    which refuses absolute paths there, finds the file by its name in its ``format_schema_path``.
    """
    default = SCHEMA_FILE if server else str(bundled_schema_path())
    return f"{schema or default}:{MESSAGE}"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(bodies: Iterable[bytes]) -> bytes:
    """Messages as ClickHouse's ``Protobuf`` format reads them: each prefixed by its varint length."""
    # Prefix and body as separate pieces: each body is copied once, into the result.
    return b"".join(itertools.chain.from_iterable((_varint(len(body)), body) for body in bodies))
