"""What the grant and correction routes share: ids from ``Idempotency-Key``, page cursors, the admin's clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, status

from usagemeter_api.core.clock import epoch_ms
from usagemeter_api.core.security import Principal
from usagemeter_clickhouse import Client, dimension_attributes

__all__ = ["AUTH", "cursor_of", "decode_cursor", "record_id", "require_allowed_dimensions", "to_the_millisecond"]

AUTH: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "Missing, expired or invalid bearer token.",
    status.HTTP_403_FORBIDDEN: "The token does not carry role admin.",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAMESPACE = uuid.UUID("6f0d3c1e-8a51-4c1b-9b7e-2d4f8e0a7c39")


def record_id(kind: str, principal: Principal, idempotency_key: str | None, *scope: str) -> str:
    """The id of the record a request creates: derived from its ``Idempotency-Key`` (per admin), else fresh.

    A retry with the same key derives the same id, which the store finds and answers with. ``scope``
    adds what the store looks the record up by beside its id.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, "\0".join((kind, principal.user_id, idempotency_key, *scope))))


def to_the_millisecond(moment: datetime) -> datetime:
    """``moment`` cut to the millisecond, as ``DateTime64(3)`` stores it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def cursor_of(position: tuple[datetime, str] | None) -> str | None:
    """The opaque cursor of a page's last (time, id) position."""
    return None if position is None else f"{epoch_ms(position[0])}.{position[1]}"


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The position a cursor names; 422 when it is not one this API handed out."""
    if cursor is None:
        return None
    millis, _, record = cursor.partition(".")
    try:
        moment = _EPOCH + timedelta(milliseconds=int(millis))
        return moment, str(uuid.UUID(record))
    except (ValueError, OverflowError, OSError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"invalid cursor {cursor[:80]!r}") from None


def require_allowed_dimensions(client: Client, named: dict[str, str]) -> None:
    """422 naming the first field (of field -> attribute) whose attribute is not on the dimension allow-list."""
    if not named:
        return
    allowed = dimension_attributes(client)
    for field, attribute in named.items():
        if attribute not in allowed:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"{field} {attribute!r} is not on the dimension allow-list (USAGEMETER_DIMENSION_ATTRIBUTES):"
                f" {', '.join(allowed) or 'empty'}",
            )
