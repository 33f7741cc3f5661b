"""The collector's own counters, rendered in the Prometheus text exposition format for GET /metrics."""

from __future__ import annotations

from dataclasses import dataclass, fields

_PREFIX = "usagemeter_collector_"

_HELP = {
    "requests_received": ("counter", "Export requests received."),
    "requests_duplicate": ("counter", "Export requests answered as resends of an already spooled request."),
    "requests_refused": ("counter", "Export requests refused (bad payload, authentication, spool full)."),
    "items_accepted": ("counter", "Data points and spans accepted into the spool."),
    "items_rejected": ("counter", "Data points and spans rejected through partial success."),
    "spooled_bytes": ("counter", "Bytes written to spool segments."),
    "rows_inserted": ("counter", "Rows committed to ClickHouse."),
    "inserts": ("counter", "Inserts committed to ClickHouse."),
    "insert_retries": ("counter", "Failed insert attempts that will be retried."),
    "segments_quarantined": ("counter", "Spool segments ClickHouse refused as unstorable, moved aside."),
    "insert_seconds_total": ("counter", "Time spent in committed inserts."),
    "spool_bytes": ("gauge", "Bytes currently held in the spool."),
}


@dataclass
class Telemetry:
    """Plain counters; each is written by one thread, so no lock is needed for exposition."""

    requests_received: int = 0
    requests_duplicate: int = 0
    requests_refused: int = 0
    items_accepted: int = 0
    items_rejected: int = 0
    spooled_bytes: int = 0
    rows_inserted: int = 0
    inserts: int = 0
    insert_retries: int = 0
    segments_quarantined: int = 0
    insert_seconds_total: float = 0.0
    spool_bytes: int = 0

    def render(self) -> str:
        """The counters as Prometheus text."""
        lines = []
        for item in fields(self):
            kind, help_text = _HELP[item.name]
            name = _PREFIX + item.name
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {getattr(self, item.name)}"]
        return "\n".join(lines) + "\n"
