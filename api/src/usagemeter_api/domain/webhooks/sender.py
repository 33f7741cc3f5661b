"""Webhook delivery: each due delivery POSTed to its endpoint, signed as the Standard Webhooks spec says,
and retried on a schedule until it is delivered or given up.

The first attempt goes as soon as the event is recorded; then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h (eight attempts over 27 h 35 min). A 2xx answer delivers. 408, 429, 5xx, a redirect, a timeout or no
connection is tried again (a ``Retry-After`` longer than the next delay is honoured, up to 10 h); any other
4xx fails the delivery at once, as does a URL the target guard refuses. Every attempt is logged.

Each request goes to the address the guard checked (the hostname is sent as ``Host`` and TLS server
name), so a name that resolves elsewhere between the check and the connection cannot redirect it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks.webhooks import Webhook

from usagemeter_api.core.clock import system_clock
from usagemeter_api.core.pool import ClientPool
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_api.domain.webhooks.endpoints import Endpoint, EndpointStore
from usagemeter_api.domain.webhooks.outbox import Attempt, Delivery, DeliveryState, due_deliveries, record_attempts
from usagemeter_api.domain.webhooks.replicas import Membership
from usagemeter_api.domain.webhooks.targets import (
    TargetRefused,
    TargetUnresolved,
    parse_target,
    pinned_url,
    resolve_target,
)
from usagemeter_clickhouse import Client

__all__ = ["RETRY_DELAYS", "WebhookSender"]

logger = logging.getLogger(__name__)

#: The wait after each failed attempt before the next; after the last one the delivery fails.
RETRY_DELAYS = tuple(
    timedelta(seconds=seconds) for seconds in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
)
_MAX_RETRY_AFTER = timedelta(hours=10)
_RETRIED_4XX = frozenset({408, 429})
_USER_AGENT = "usagemeter-webhooks/0.1"


class WebhookSender:
    """Sends this replica's share of due deliveries in a background thread, ``concurrency`` at a time."""

    def __init__(
        self,
        pool: ClientPool,
        endpoints: EndpointStore,
        membership: Membership,
        *,
        allow_private_targets: bool = False,
        interval_seconds: float = 1.0,
        timeout_seconds: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        self._pool, self._endpoints, self._membership = pool, endpoints, membership
        # Wall-clock time, whatever clock the app answers with: retries wait real seconds, and receivers
        # check webhook-timestamp against their own clocks.
        self._clock = system_clock
        self._allow_private = allow_private_targets
        self._timeout = timeout_seconds
        self._concurrency = concurrency
        # Made on the first send: its CA bundle costs tens of milliseconds an app that sends nothing need not pay.
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="usagemeter-webhook-send")
        self._in_flight: dict[tuple[str, str], Future[None]] = {}
        self._background = BackgroundRefresh(
            "webhook sender",
            self.send_due,
            interval_seconds,
            task="reading due webhook deliveries",
            meanwhile="trying again",
        )

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Send in the background from now on (once)."""
        self._background.start(client_factory)

    def wake(self) -> None:
        """Look for due deliveries now (events were just recorded)."""
        self._background.wake()

    def close(self) -> None:
        """Stop sending; attempts under way finish (within the request timeout) and are logged."""
        self._background.close()
        self._executor.shutdown(wait=True)
        with self._http_lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def send_due(self, client: Client) -> int:
        """Start sending the due deliveries this replica owns (those not under way already); how many started."""
        rank = self._membership.rank()
        self._in_flight = {key: future for key, future in self._in_flight.items() if not future.done()}
        free = self._concurrency * 4 - len(self._in_flight)
        if rank is None or free <= 0 or not self._endpoints.subscriptions():
            return 0
        due = due_deliveries(client, self._clock(), rank[0], rank[1], free + len(self._in_flight))
        started = 0
        for delivery in due:
            key = (delivery.event_id, delivery.endpoint_id)
            if key not in self._in_flight and started < free:
                self._in_flight[key] = self._executor.submit(self._deliver, delivery)
                started += 1
        return started

    def _deliver(self, delivery: Delivery) -> None:
        attempt = self.attempt(delivery)
        try:
            with self._pool.client() as client:
                record_attempts(client, [attempt])
        except Exception as exc:
            # Not recorded: the delivery stays due and is sent again (at least once).
            logger.warning("recording webhook attempt %s failed: %s", delivery.event_id, exc)

    def attempt(self, delivery: Delivery) -> Attempt:
        """Send ``delivery`` once and say where it stands after."""
        sending = _Sending(delivery, self._clock(), time.monotonic(), self._membership.replica_id)
        try:
            endpoint = self._endpoint(delivery.endpoint_id)
            if endpoint is None:
                return sending.ended(None, "the endpoint was deleted", "failed")
            response = self._post(endpoint.url, endpoint.secret, delivery, sending.started)
        except TargetUnresolved as exc:
            return sending.to_retry(None, str(exc))
        except TargetRefused as exc:
            return sending.ended(None, f"target refused: {exc}", "failed")
        except httpx.HTTPError as exc:
            return sending.to_retry(None, _describe(exc))
        status = response.status_code
        if 200 <= status < 300:
            return sending.ended(status, "", "delivered")
        if 400 <= status < 500 and status not in _RETRIED_4XX:
            return sending.ended(status, f"answered {status}: not retried", "failed")
        return sending.to_retry(status, f"answered {status}", _retry_after(response, sending.started))

    def _endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint as held, else as ClickHouse has it (one registered on another replica a moment ago)."""
        held = self._endpoints.held(endpoint_id)
        if held is not None:
            return held
        with self._pool.client() as client:
            return self._endpoints.find(client, endpoint_id)

    def _post(self, url: str, secret: str, delivery: Delivery, now: datetime) -> httpx.Response:
        target = resolve_target(parse_target(url), allow_private=self._allow_private)
        signature = Webhook(secret).sign(delivery.event_id, now, delivery.payload)
        default_port = {"http": 80, "https": 443}[target.scheme]
        name = f"[{target.host}]" if ":" in target.host else target.host
        host = name if target.port == default_port else f"{name}:{target.port}"
        headers = {
            "Host": host,
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        http = self._client()
        request = http.build_request(
            "POST",
            pinned_url(target, target.addresses[0]),
            content=delivery.payload.encode(),
            headers=headers,
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        # Only the status matters: the body is never read, so a receiver cannot make the sender hold it.
        response = http.send(request, stream=True)
        response.close()
        return response

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout, follow_redirects=False, trust_env=False)
            return self._http


@dataclass(frozen=True, slots=True)
class _Sending:
    """One attempt under way: what its outcome is recorded with."""

    delivery: Delivery
    started: datetime
    monotonic: float
    replica_id: str

    def to_retry(self, status: int | None, error: str, retry_after: timedelta | None = None) -> Attempt:
        """A failure worth trying again: pending until the next delay (or ``retry_after``), failed past the last."""
        attempts = self.delivery.attempts
        if attempts >= len(RETRY_DELAYS):
            return self.ended(status, f"{error}; gave up after {attempts + 1}", "failed")
        delay = RETRY_DELAYS[attempts]
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER))
        return self.ended(status, error, "pending", self.started + delay)

    def ended(
        self, status: int | None, error: str, state: DeliveryState, next_attempt_at: datetime | None = None
    ) -> Attempt:
        """The attempt as recorded, the delivery in ``state`` after it."""
        if state != "delivered":
            logger.info("webhook %s to %s: %s (%s)", self.delivery.event_id, self.delivery.endpoint_id, error, state)
        return Attempt(
            delivery=self.delivery,
            attempted_at=self.started,
            status=status,
            error=error,
            duration_ms=int((time.monotonic() - self.monotonic) * 1000),
            replica_id=self.replica_id,
            state=state,
            next_attempt_at=next_attempt_at or self.started,
        )


def _retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """The ``Retry-After`` of a 429 or 503 answer (seconds or an HTTP date), if it has a readable one."""
    value = response.headers.get("Retry-After")
    if response.status_code not in (429, 503) or not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        return parsedate_to_datetime(value) - now
    except (TypeError, ValueError):
        return None


def _describe(exc: httpx.HTTPError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not connect"
    return f"{kind}: {type(exc).__name__}: {exc}"[:300]
