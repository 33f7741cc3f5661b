"""``/admin/webhooks``: the endpoints threshold events are sent to, and each one's delivery log (role admin)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from usagemeter_api.api.deps import Admin, ClickHouse, Clock, WebhooksDep
from usagemeter_api.api.routes._adjustments import AUTH, to_the_millisecond
from usagemeter_api.core.clock import epoch_ms
from usagemeter_api.domain.webhooks.endpoints import Endpoint, TooManyEndpoints, UnknownEndpoint
from usagemeter_api.domain.webhooks.outbox import Delivery, attempts_of, recorded_deliveries
from usagemeter_api.domain.webhooks.targets import TargetRefused, parse_target, resolve_target
from usagemeter_api.schemas.errors import error_responses
from usagemeter_api.schemas.webhooks import (
    AttemptInfo,
    DeliveryInfo,
    DeliveryList,
    EndpointBody,
    EndpointCreated,
    EndpointInfo,
    EndpointList,
)

router = APIRouter(prefix="/admin/webhooks", tags=["admin"])

_UNKNOWN: dict[int, str] = {status.HTTP_404_NOT_FOUND: "No webhook endpoint has this id."}
_REFUSED: dict[int, str] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid body, or a URL the API will not send to (not http(s), private)."
}
_FULL: dict[int, str] = {status.HTTP_409_CONFLICT: "As many endpoints as allowed are registered."}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^(\d{1,15})\.(evt_[0-9a-f]{32})$")
EndpointId = Annotated[UUID, Path(description="The endpoint's id.")]


@router.post(
    "",
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(AUTH | _REFUSED | _FULL),
)
def create_endpoint(
    principal: Admin, body: EndpointBody, webhooks: WebhooksDep, client: ClickHouse, now: Clock
) -> EndpointCreated:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    try:
        target = resolve_target(parse_target(body.url), allow_private=webhooks.allow_private_targets)
    except TargetRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"url refused: {exc}") from exc
    try:
        endpoint = webhooks.endpoints.create(
            client, target.url, body.events, body.description, principal.user_id, to_the_millisecond(now)
        )
    except TooManyEndpoints as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return EndpointCreated(**_info(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", response_model=EndpointList, responses=error_responses(AUTH))
def list_endpoints(_: Admin, webhooks: WebhooksDep, client: ClickHouse) -> EndpointList:
    """The registered endpoints, oldest first (without their secrets)."""
    return EndpointList(endpoints=[_info(endpoint) for endpoint in webhooks.endpoints.read_all(client)])


@router.get("/{endpoint_id}", response_model=EndpointInfo, responses=error_responses(AUTH | _UNKNOWN))
def get_endpoint(_: Admin, endpoint_id: EndpointId, webhooks: WebhooksDep, client: ClickHouse) -> EndpointInfo:
    """One endpoint (without its secret)."""
    return _info(_found(webhooks.endpoints.find(client, str(endpoint_id)), endpoint_id))


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(AUTH | _UNKNOWN))
def delete_endpoint(
    _: Admin, endpoint_id: EndpointId, webhooks: WebhooksDep, client: ClickHouse, now: Clock
) -> Response:
    """Delete an endpoint: nothing more is sent to it, not even its pending deliveries."""
    try:
        webhooks.endpoints.delete(client, str(endpoint_id), to_the_millisecond(now))
    except UnknownEndpoint as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryList, responses=error_responses(AUTH | _UNKNOWN))
def list_deliveries(
    _: Admin,
    endpoint_id: EndpointId,
    webhooks: WebhooksDep,
    client: ClickHouse,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=60, description="`next_cursor` of the previous page.")] = None,
) -> DeliveryList:
    """What was sent to the endpoint, newest first: each event's state, body and attempts."""
    _found(webhooks.endpoints.find(client, str(endpoint_id)), endpoint_id)
    found = recorded_deliveries(client, str(endpoint_id), limit + 1, _decode(cursor))
    page = found[:limit]
    history = attempts_of(client, str(endpoint_id), [delivery.event_id for delivery in page])
    last = page[-1] if len(found) > limit else None
    return DeliveryList(
        deliveries=[_delivery_info(delivery, history.get(delivery.event_id, [])) for delivery in page],
        next_cursor=None if last is None else f"{epoch_ms(last.created_at)}.{last.event_id}",
    )


def _found(endpoint: Endpoint | None, endpoint_id: UUID) -> Endpoint:
    if endpoint is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook endpoint has id {endpoint_id}")
    return endpoint


def _decode(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    match = _CURSOR.match(cursor)
    if match is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"invalid cursor {cursor[:60]!r}")
    return _EPOCH + timedelta(milliseconds=int(match[1])), match[2]


def _info(endpoint: Endpoint) -> EndpointInfo:
    return EndpointInfo(
        id=endpoint.endpoint_id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        created_by=endpoint.created_by,
        created_at=endpoint.created_at,
    )


def _delivery_info(delivery: Delivery, attempts: list[tuple[object, ...]]) -> DeliveryInfo:
    return DeliveryInfo(
        event_id=delivery.event_id,
        type=delivery.type,
        state=delivery.state,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
        created_at=delivery.created_at,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        payload=json.loads(delivery.payload),
        history=[
            AttemptInfo(attempt=n, attempted_at=at, status_code=code or None, error=error, duration_ms=ms)  # type: ignore[arg-type]
            for n, at, code, error, ms in attempts
        ],
    )
