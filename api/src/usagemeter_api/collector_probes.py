"""Asking collectors directly how they are: ``GET /health`` on each configured OTLP/HTTP base URL.

A collector that cannot reach ClickHouse at all (down, refused password) cannot store its
self-telemetry either: its reports just stop. Its own ``/health`` still says why, so the
operator's health details include what the collectors listed in ``USAGEMETER_COLLECTOR_URLS`` answer.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["CollectorProbe", "probe_collectors"]

logger = logging.getLogger(__name__)

#: How long one collector may take to answer; an unanswered probe reads as an unreachable collector.
PROBE_TIMEOUT_SECONDS = 2.0
#: Most collectors asked at once.
_PARALLEL = 8


@dataclass(frozen=True)
class CollectorProbe:
    """What one collector's ``/health`` answered, or why it did not (``unreachable``)."""

    url: str
    instance: str | None = None
    insert_error: str | None = None
    oldest_unsent_seconds: float = 0.0
    spool_writable: bool = True
    unreachable: str | None = None


def probe_collectors(urls: Sequence[str], timeout: float = PROBE_TIMEOUT_SECONDS) -> list[CollectorProbe]:
    """Each collector's answer, in the order of ``urls`` (all asked concurrently)."""
    if not urls:
        return []
    with ThreadPoolExecutor(min(len(urls), _PARALLEL), thread_name_prefix="collector-probe") as pool:
        return list(pool.map(lambda url: _probe(url, timeout), urls))


def _probe(url: str, timeout: float) -> CollectorProbe:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError) as exc:  # refused, timed out, HTTP error status, not JSON
        logger.info("collector %s did not answer its health check: %s", url, exc)
        return CollectorProbe(url, unreachable=str(getattr(exc, "reason", exc)))
    failing = bool(body.get("insert_failing"))
    return CollectorProbe(
        url,
        instance=body.get("instance"),
        insert_error=str(body.get("insert_last_error") or "unknown error") if failing else None,
        oldest_unsent_seconds=float(body.get("oldest_unsent_age_seconds") or 0.0),
        spool_writable=bool(body.get("spool_writable", True)),
    )
