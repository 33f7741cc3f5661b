"""Request and response bodies of ``/admin/webhooks``: endpoints, and the log of what was sent to each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

__all__ = [
    "AttemptInfo",
    "DeliveryInfo",
    "DeliveryList",
    "EndpointBody",
    "EndpointCreated",
    "EndpointInfo",
    "EndpointList",
    "EventTypeName",
]

#: The event types an endpoint may subscribe to.
EventTypeName = Literal[
    "quota.threshold_reached", "quota.exceeded", "quota.reset", "grant.exhausted", "quota.projected_to_exceed"
]
DeliveryStateName = Literal["pending", "delivered", "failed"]

_ENDPOINT: JsonDict = {
    "id": "3b0c2a4e-6a55-4f7e-9c1d-2f8e5b7a9c10",
    "url": "https://hooks.example.com/usagemeter",
    "events": ["quota.threshold_reached", "quota.exceeded"],
    "description": "Billing team",
    "created_by": "admin-1",
    "created_at": "2026-12-01T09:30:00Z",
}
_PAYLOAD: JsonDict = {
    "type": "quota.threshold_reached",
    "user_id": "user-123",
    "feature_key": "ai_tokens",
    "dimension_value": None,
    "threshold_percent": 80,
    "used": 800_412,
    "limit": 1_000_000,
    "granted": 0,
    "window": "month",
    "period_start": "2026-12-01T00:00:00Z",
    "period_end": "2027-01-01T00:00:00Z",
    "occurred_at": "2026-12-14T16:02:11.204Z",
}
_ATTEMPT: JsonDict = {
    "attempt": 1,
    "attempted_at": "2026-12-14T16:02:11.530Z",
    "status_code": 503,
    "error": "answered 503",
    "duration_ms": 41,
}
_DELIVERY: JsonDict = {
    "event_id": "evt_5f2b9c0d1e3a4b6c7d8e9f0a1b2c3d4e",
    "type": "quota.threshold_reached",
    "state": "pending",
    "attempts": 1,
    "next_attempt_at": "2026-12-14T16:02:16.530Z",
    "created_at": "2026-12-14T16:02:11.204Z",
    "last_status": 503,
    "last_error": "answered 503",
    "payload": _PAYLOAD,
    "history": [_ATTEMPT],
}


class EndpointBody(BaseModel):
    """An endpoint to register: where to POST, and which event types."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/usagemeter",
                    "events": ["quota.threshold_reached", "quota.exceeded"],
                    "description": "Billing team",
                }
            ]
        },
    )

    url: Annotated[str, Field(min_length=1, max_length=2048, description="An http(s) URL on a public address.")]
    events: Annotated[list[EventTypeName], Field(min_length=1, max_length=5, description="Event types to send.")]
    description: Annotated[str, Field(max_length=500)] = ""


class EndpointInfo(BaseModel):
    """A registered endpoint (its secret is shown only when it is created)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT]})

    id: str
    url: str
    events: list[EventTypeName]
    description: str
    created_by: str
    created_at: datetime


class EndpointCreated(EndpointInfo):
    """A new endpoint with its signing secret: keep it, it is not shown again."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [_ENDPOINT | {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}
    )

    secret: str = Field(description="`whsec_` and base64: verify each delivery's `webhook-signature` with it.")


class EndpointList(BaseModel):
    """The registered endpoints, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"endpoints": [_ENDPOINT]}]})

    endpoints: list[EndpointInfo]


class AttemptInfo(BaseModel):
    """One attempt at a delivery; ``status_code`` null when no HTTP answer came."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ATTEMPT]})

    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str
    duration_ms: int


class DeliveryInfo(BaseModel):
    """An event's delivery to the endpoint: where it stands, the body sent, and every attempt."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DELIVERY]})

    event_id: str = Field(description="The `webhook-id` it is sent with (stable: receivers dedupe on it).")
    type: str
    state: DeliveryStateName
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending only).")
    created_at: datetime
    last_status: int | None
    last_error: str
    payload: dict[str, object]
    history: list[AttemptInfo]


class DeliveryList(BaseModel):
    """Deliveries to an endpoint, newest first; ``next_cursor`` pages on (null on the last page)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"deliveries": [_DELIVERY], "next_cursor": None}]})

    deliveries: list[DeliveryInfo]
    next_cursor: str | None
