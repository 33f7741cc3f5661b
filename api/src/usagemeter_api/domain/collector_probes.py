"""Asking collectors directly how they are: ``GET /health`` on each configured OTLP/HTTP base URL.

A collector that cannot reach ClickHouse at all (down, refused password) cannot store its
self-telemetry either: its reports just stop. Its own ``/health`` still says why, so the
operator's health details include what the collectors listed in ``USAGEMETER_COLLECTOR_URLS`` answer.
Without a token a collector answers reason codes only (``AUTHENTICATION_FAILED``); with one of its
ingest tokens (``USAGEMETER_COLLECTOR_TOKEN``) it adds ClickHouse's error text.

Each URL's last answer names its instance, so a collector that stops answering is shown as that
instance, down, rather than beside it as an unknown URL.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from pydantic import SecretStr

__all__ = ["CollectorProbe", "CollectorProbes"]

logger = logging.getLogger(__name__)

#: How long one collector may take to answer; an unanswered probe reads as an unreachable collector.
PROBE_TIMEOUT_SECONDS = 2.0
#: Most collectors asked at once.
_PARALLEL = 8


@dataclass(frozen=True)
class CollectorProbe:
    """What one collector's ``/health`` answered, or why it did not (``unreachable``: then ``instance`` is the one
    that answered at this URL last, if any)."""

    url: str
    instance: str | None = None
    insert_error: str | None = None
    oldest_unsent_seconds: float = 0.0
    spool_writable: bool = True
    unreachable: str | None = None


class CollectorProbes:
    """Asks collectors' ``GET /health``, remembering per URL the instance that last answered there.

    Only the URLs of the latest round are remembered, so the memory is bounded by the configuration.
    """

    def __init__(self, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._instances: dict[str, str] = {}
        self._lock = threading.Lock()

    def probe(self, urls: Sequence[str], token: SecretStr | None = None) -> list[CollectorProbe]:
        """Each collector's answer, in the order of ``urls`` (all asked concurrently), sending ``token`` if set."""
        if not urls:
            return []
        secret = token.get_secret_value() if token is not None else ""
        with ThreadPoolExecutor(min(len(urls), _PARALLEL), thread_name_prefix="collector-probe") as pool:
            answers = list(pool.map(lambda url: _probe(url, secret, self._timeout), urls))
        return self._named(urls, answers)

    def _named(self, urls: Sequence[str], answers: list[CollectorProbe]) -> list[CollectorProbe]:
        """The answers, an unanswered URL named by the instance its last answer gave; remembers this round's."""
        with self._lock:
            known = {url: self._instances[url] for url in urls if url in self._instances}
            for answer in answers:
                if answer.unreachable is None:  # an answer without an instance (self-telemetry off) forgets it
                    known.pop(answer.url, None)
                    if answer.instance is not None:
                        known[answer.url] = answer.instance
            self._instances = known
        return [replace(a, instance=known.get(a.url)) if a.unreachable is not None else a for a in answers]


def _probe(url: str, token: str, timeout: float) -> CollectorProbe:
    request = urllib.request.Request(f"{url.rstrip('/')}/health")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError) as exc:  # refused, timed out, HTTP error status (401: token refused), not JSON
        logger.info("collector %s did not answer its health check: %s", url, exc)
        return CollectorProbe(url, unreachable=_why(exc))
    return CollectorProbe(
        url,
        instance=body.get("instance"),
        insert_error=_insert_error(body),
        oldest_unsent_seconds=float(body.get("oldest_unsent_age_seconds") or 0.0),
        spool_writable=bool(body.get("spool_writable", True)),
    )


def _why(exc: OSError | ValueError) -> str:
    if isinstance(exc, urllib.error.HTTPError) and exc.code == 401:
        return "the collector does not accept USAGEMETER_COLLECTOR_TOKEN (HTTP 401)"
    return str(getattr(exc, "reason", exc))


def _insert_error(body: dict[str, Any]) -> str | None:
    """The failing inserts' error: its text when the collector gave it (to a token), else its code."""
    if not body.get("insert_failing"):
        return None
    return str(body.get("insert_last_error") or body.get("insert_error_code") or "unknown error")
