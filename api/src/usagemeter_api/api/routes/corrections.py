"""``/admin/corrections``: signed amounts added to a user's usage, with who and why (role admin).

A correction is never deleted: a mistaken one is undone by recording its opposite.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from usagemeter_api.api.deps import Admin, ClickHouse, Clock, IdempotencyKey, ServicesDep
from usagemeter_api.api.routes._adjustments import (
    AUTH,
    cursor_of,
    decode_cursor,
    record_id,
    require_allowed_dimensions,
    to_the_millisecond,
)
from usagemeter_api.domain.corrections import Correction, list_corrections, record_correction
from usagemeter_api.quantity import from_micros, to_micros
from usagemeter_api.schemas.adjustments import CorrectionBody, CorrectionInfo, CorrectionList
from usagemeter_api.schemas.errors import error_responses

router = APIRouter(prefix="/admin/corrections", tags=["admin"])

#: How far ahead of the API's clock a correction may be timed (the senders' clocks differ as much).
_MAX_AHEAD = timedelta(minutes=1)
_REFUSED: dict[int, str] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid body: a time out of range, a dimension not on the allow-list,"
    " or an Idempotency-Key used before for another correction."
}


@router.post(
    "",
    response_model=CorrectionInfo,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(AUTH | _REFUSED),
)
def create_correction(
    principal: Admin,
    body: CorrectionBody,
    client: ClickHouse,
    services: ServicesDep,
    now: Clock,
    key: IdempotencyKey = None,
) -> CorrectionInfo:
    """Add a signed amount to a user's usage; every rollup, quota and report counts it at once."""
    recorded_at = to_the_millisecond(now)
    occurred_at = body.occurred_at or recorded_at
    _check_moment(occurred_at, now, services.settings.rollup_retention_days)
    if body.dimension_key is not None:
        require_allowed_dimensions(client, {"dimension_key": body.dimension_key})
    asked = Correction(
        # A correction is looked up by user and feature (its sorting key), so they are part of its id.
        correction_id=record_id("correction", principal, key, body.user_id, body.feature_key),
        user_id=body.user_id,
        feature_key=body.feature_key,
        dimension_key=body.dimension_key,
        dimension_value=body.dimension_value,
        occurred_at=occurred_at,
        amount_micros=to_micros(body.amount),
        reason=body.reason,
        recorded_by=principal.user_id,
        recorded_at=recorded_at,
    )
    recorded = record_correction(client, asked)
    if _terms(recorded, body.occurred_at is not None) != _terms(asked, body.occurred_at is not None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"Idempotency-Key {key!r} was used for another correction"
        )
    return correction_info(recorded)


@router.get("", response_model=CorrectionList, responses=error_responses(AUTH))
def get_corrections(
    _: Admin,
    client: ClickHouse,
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    feature_key: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="Only those occurring at or after this moment.")] = None,
    until: Annotated[datetime | None, Query(description="Only those occurring before this moment.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=100, description="`next_cursor` of the previous page.")] = None,
) -> CorrectionList:
    """Corrections with who recorded them and why, newest recorded first."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{name} needs a time zone (Z or +hh:mm)")
    page = list_corrections(
        client,
        user_id=user_id,
        feature_key=feature_key,
        since=since,
        until=until,
        limit=limit,
        after=decode_cursor(cursor),
    )
    corrections = [correction_info(correction) for correction in page.corrections]
    return CorrectionList(corrections=corrections, next_cursor=cursor_of(page.next_cursor))


def correction_info(correction: Correction) -> CorrectionInfo:
    """The answer describing ``correction``."""
    return CorrectionInfo(
        correction_id=correction.correction_id,
        user_id=correction.user_id,
        feature_key=correction.feature_key,
        amount=from_micros(correction.amount_micros),
        occurred_at=correction.occurred_at,
        reason=correction.reason,
        dimension_key=correction.dimension_key,
        dimension_value=correction.dimension_value,
        recorded_by=correction.recorded_by,
        recorded_at=correction.recorded_at,
    )


def _check_moment(occurred_at: datetime, now: datetime, retention_days: int) -> None:
    if occurred_at > now + _MAX_AHEAD:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"occurred_at {occurred_at.isoformat()} is more than a minute in the future",
        )
    if occurred_at < now - timedelta(days=retention_days):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"occurred_at {occurred_at.isoformat()} is older than the rollups keep ({retention_days} days)",
        )


def _terms(correction: Correction, timed: bool) -> tuple[object, ...]:
    # occurred_at only when the request gave it: its default is the first request's time.
    terms = (correction.user_id, correction.feature_key, correction.dimension_key, correction.dimension_value)
    return (*terms, correction.amount_micros, correction.reason, correction.occurred_at if timed else None)
