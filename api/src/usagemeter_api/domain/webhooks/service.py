"""One API replica's webhook machinery: endpoints, heartbeat, detector and sender, started and stopped together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from usagemeter_api.domain.webhooks.detector import ThresholdDetector
from usagemeter_api.domain.webhooks.endpoints import EndpointStore
from usagemeter_api.domain.webhooks.replicas import Membership
from usagemeter_api.domain.webhooks.sender import WebhookSender
from usagemeter_clickhouse import Client

__all__ = ["Webhooks"]


@dataclass(frozen=True, slots=True)
class Webhooks:
    """What an API replica runs for threshold webhooks (``usagemeter_api.create_app`` builds it)."""

    endpoints: EndpointStore
    membership: Membership
    detector: ThresholdDetector
    sender: WebhookSender
    #: Whether the guard lets endpoints on loopback and private addresses in (development and tests only).
    allow_private_targets: bool

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Start every part in the background."""
        self.endpoints.start(client_factory)
        self.membership.start(client_factory)
        self.detector.start(client_factory)
        self.sender.start(client_factory)

    def close(self) -> None:
        """Stop every part: the sender finishes the attempts under way."""
        self.detector.close()
        self.sender.close()
        self.membership.close()
        self.endpoints.close()
