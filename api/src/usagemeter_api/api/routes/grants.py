"""``/admin/grants``: extra allowance of a feature for a user, listed and voided (role admin)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, status

from usagemeter_api.api.deps import Admin, ClickHouse, Clock, Grants, IdempotencyKey
from usagemeter_api.api.routes._adjustments import AUTH, cursor_of, decode_cursor, record_id, to_the_millisecond
from usagemeter_api.domain.grants import AlreadyVoided, Grant, GrantStatus, UnknownGrant, grant_status, list_grants
from usagemeter_api.quantity import from_micros, to_micros
from usagemeter_api.schemas.adjustments import GrantBody, GrantInfo, GrantList, VoidBody
from usagemeter_api.schemas.errors import error_responses

router = APIRouter(prefix="/admin/grants", tags=["admin"])

logger = logging.getLogger(__name__)

_UNKNOWN: dict[int, str] = {status.HTTP_404_NOT_FOUND: "No grant has this id."}
_VOIDED: dict[int, str] = {status.HTTP_409_CONFLICT: "The grant was voided before."}
_REUSED: dict[int, str] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid body, or an Idempotency-Key used before for another grant."
}


@router.post(
    "", response_model=GrantInfo, status_code=status.HTTP_201_CREATED, responses=error_responses(AUTH | _REUSED)
)
def create_grant(
    principal: Admin, body: GrantBody, grants: Grants, client: ClickHouse, now: Clock, key: IdempotencyKey = None
) -> GrantInfo:
    """Grant a user extra allowance of a feature; it counts in quota answers from ``effective_from`` at once."""
    granted_at = to_the_millisecond(now)
    start = body.effective_from or granted_at
    if body.expires_at is not None and body.expires_at <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="expires_at must be after effective_from")
    asked = Grant(
        grant_id=record_id("grant", principal, key),
        user_id=body.user_id,
        feature_key=body.feature_key,
        dimension_value=body.dimension_value,
        amount_micros=to_micros(body.amount),
        effective_from=start,
        expires_at=body.expires_at,
        reason=body.reason,
        granted_by=principal.user_id,
        granted_at=granted_at,
        voided_at=None,
        voided_by=None,
    )
    recorded = grants.create(client, asked)
    # A retry asks for the same grant again; one with other terms reused the key by mistake.
    timed = body.effective_from is not None
    if _terms(recorded, timed) != _terms(asked, timed):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"Idempotency-Key {key!r} was used for another grant"
        )
    return grant_info(recorded, now)


@router.get("", response_model=GrantList, responses=error_responses(AUTH))
def get_grants(
    _: Admin,
    client: ClickHouse,
    now: Clock,
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    feature_key: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    grant_state: Annotated[GrantStatus | None, Query(alias="status", description="Where they stand now.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=100, description="`next_cursor` of the previous page.")] = None,
) -> GrantList:
    """Grants, newest first, filtered by user, feature and status (active, scheduled, expired, voided)."""
    page = list_grants(
        client,
        now,
        user_id=user_id,
        feature_key=feature_key,
        status=grant_state,
        limit=limit,
        after=decode_cursor(cursor),
    )
    return GrantList(grants=[grant_info(grant, now) for grant in page.grants], next_cursor=cursor_of(page.next_cursor))


@router.post("/{grant_id}/void", response_model=GrantInfo, responses=error_responses(AUTH | _UNKNOWN | _VOIDED))
def void_grant(
    principal: Admin, grant_id: Annotated[UUID, Path()], body: VoidBody, grants: Grants, client: ClickHouse, now: Clock
) -> GrantInfo:
    """Void a grant from now on; who voided it and when are kept."""
    try:
        voided = grants.void(client, str(grant_id), principal.user_id, to_the_millisecond(now), body.reason)
    except UnknownGrant as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    except AlreadyVoided as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    logger.info("grant %s voided by %s: %s", grant_id, principal.user_id, body.reason)
    return grant_info(voided, now)


def grant_info(grant: Grant, now: datetime) -> GrantInfo:
    """The answer describing ``grant`` at ``now``."""
    return GrantInfo(
        grant_id=grant.grant_id,
        user_id=grant.user_id,
        feature_key=grant.feature_key,
        dimension_value=grant.dimension_value,
        amount=from_micros(grant.amount_micros),
        effective_from=grant.effective_from,
        expires_at=grant.expires_at,
        reason=grant.reason,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
        voided_at=grant.voided_at,
        voided_by=grant.voided_by,
        void_reason=grant.void_reason,
        status=grant_status(grant, now),
    )


def _terms(grant: Grant, timed: bool) -> tuple[object, ...]:
    # effective_from only when the request gave it: its default is the first request's time.
    terms = (grant.user_id, grant.feature_key, grant.dimension_value, grant.amount_micros, grant.expires_at)
    return (*terms, grant.reason, grant.effective_from if timed else None)
