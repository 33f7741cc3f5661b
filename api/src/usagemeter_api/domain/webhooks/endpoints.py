"""Webhook endpoints admins register: kept in ClickHouse, held in memory by every replica for detection and sending.

A delete inserts a newer ``Version`` with ``DeletedAt`` set; readers take the newest row per endpoint.
Each endpoint has its own signing secret (``whsec_`` and 32 random bytes in base64, as the Standard
Webhooks spec writes them), shown once when it is created.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from usagemeter_api.core.clock import read_utc
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_api.domain.webhooks.events import EventType
from usagemeter_clickhouse import Client, tables

__all__ = ["MAX_ENDPOINTS", "Endpoint", "EndpointStore", "TooManyEndpoints", "UnknownEndpoint"]

#: Live endpoints at most: each event is one delivery per subscribed endpoint.
MAX_ENDPOINTS = 50
_COLUMNS = ["EndpointId", "Url", "Events", "Secret", "Description", "CreatedBy", "CreatedAt", "DeletedAt", "Version"]
_SELECT = f"SELECT {', '.join(_COLUMNS[:-1])} FROM {tables.WEBHOOK_ENDPOINTS} FINAL"


class UnknownEndpoint(LookupError):
    """No live endpoint has this id."""


class TooManyEndpoints(ValueError):
    """Registering one more would pass :data:`MAX_ENDPOINTS`."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registered endpoint: where to send which event types, signed with ``secret``."""

    endpoint_id: str
    url: str
    events: tuple[EventType, ...]
    secret: str
    description: str
    created_by: str
    created_at: datetime
    deleted_at: datetime | None = None


class EndpointStore:
    """The live endpoints, read from ClickHouse every ``interval_seconds`` in the background and held in memory."""

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Endpoint] = {}
        self._background = BackgroundRefresh(
            "webhook endpoints", self.revalidate, interval_seconds, meanwhile="answering from the held endpoints"
        )

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Read the endpoints in the background from now on."""
        self._background.start(client_factory)

    def close(self) -> None:
        """Stop reading them."""
        self._background.close()

    def revalidate(self, client: Client) -> None:
        """Read the live endpoints again."""
        found = {endpoint.endpoint_id: endpoint for endpoint in self.read_all(client)}
        with self._lock:
            self._held = found

    def held(self, endpoint_id: str) -> Endpoint | None:
        """The live endpoint ``endpoint_id`` as last read (no I/O)."""
        return self._held.get(endpoint_id)

    def subscriptions(self) -> list[tuple[str, str]]:
        """(endpoint id, event type) of every live endpoint's subscription, as last read (no I/O)."""
        return [(endpoint.endpoint_id, kind) for endpoint in self._held.values() for kind in endpoint.events]

    @staticmethod
    def read_all(client: Client) -> list[Endpoint]:
        """The live endpoints, oldest first, read from ClickHouse."""
        rows = client.query(f"{_SELECT} WHERE DeletedAt IS NULL ORDER BY CreatedAt, Version").result_rows
        return [_endpoint(row) for row in rows]

    @staticmethod
    def find(client: Client, endpoint_id: str) -> Endpoint | None:
        """The live endpoint ``endpoint_id`` read from ClickHouse, else None."""
        sql = f"{_SELECT} WHERE EndpointId = {{id:UUID}} AND DeletedAt IS NULL"
        rows = client.query(sql, parameters={"id": endpoint_id}).result_rows
        return _endpoint(rows[0]) if rows else None

    def create(
        self, client: Client, url: str, events: Sequence[EventType], description: str, created_by: str, now: datetime
    ) -> Endpoint:
        """Register an endpoint with a new secret; it gets the events recorded from now on."""
        if len(self.read_all(client)) >= MAX_ENDPOINTS:
            raise TooManyEndpoints(f"at most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one first")
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        endpoint = Endpoint(str(uuid.uuid4()), url, tuple(dict.fromkeys(events)), secret, description, created_by, now)
        self._write(client, endpoint)
        return endpoint

    def delete(self, client: Client, endpoint_id: str, now: datetime) -> Endpoint:
        """Delete an endpoint: nothing more is sent to it, its pending deliveries included."""
        endpoint = self.find(client, endpoint_id)
        if endpoint is None:
            raise UnknownEndpoint(f"no webhook endpoint has id {endpoint_id}")
        deleted = replace(endpoint, deleted_at=now)
        self._write(client, deleted)
        return deleted

    def _write(self, client: Client, endpoint: Endpoint) -> None:
        row = [
            uuid.UUID(endpoint.endpoint_id), endpoint.url, list(endpoint.events), endpoint.secret,
            endpoint.description, endpoint.created_by, endpoint.created_at, endpoint.deleted_at, time.time_ns(),
        ]  # fmt: skip
        client.insert(tables.WEBHOOK_ENDPOINTS, [row], column_names=_COLUMNS)
        # This process sees its own change at once; the others within the revalidation interval.
        with self._lock:
            held = dict(self._held)
            if endpoint.deleted_at is None:
                held[endpoint.endpoint_id] = endpoint
            else:
                held.pop(endpoint.endpoint_id, None)
            self._held = held


def _endpoint(row: Sequence[Any]) -> Endpoint:
    endpoint_id, url, events, secret, description, created_by, created_at, deleted_at = row
    return Endpoint(
        str(endpoint_id), str(url), tuple(events), str(secret), str(description), str(created_by),
        read_utc(created_at), None if deleted_at is None else read_utc(deleted_at),
    )  # fmt: skip
