"""Error bodies and their OpenAPI documentation, shared by every route."""

from __future__ import annotations

from typing import Any

from fastapi import status
from pydantic import BaseModel, ConfigDict

__all__ = ["ErrorBody", "ValidationErrorBody", "error_responses"]


class ErrorBody(BaseModel):
    """Why a request was refused or could not be answered."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "invalid token: Signature has expired"}]})

    detail: str


class ValidationErrorBody(BaseModel):
    """Bad input: one message, or one entry per invalid field (FastAPI's validation errors)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "from (2026-11-03T10:00:00+00:00) must be before to (2026-11-03T09:00:00+00:00)"},
                {
                    "detail": [
                        {
                            "type": "greater_than_equal",
                            "loc": ["query", "amount"],
                            "msg": "Input should be greater than or equal to 1",
                            "input": "0",
                        }
                    ]
                },
            ]
        }
    )

    detail: str | list[dict[str, Any]]


_EXAMPLES: dict[int, str] = {
    status.HTTP_401_UNAUTHORIZED: "invalid token: Signature has expired",
    status.HTTP_403_FORBIDDEN: "only an admin may read another user's data",
    status.HTTP_404_NOT_FOUND: "plan 'free' does not meter feature 'teleportation'; its features: chat_messages",
    status.HTTP_409_CONFLICT: "plan 'team' exists already",
    status.HTTP_503_SERVICE_UNAVAILABLE: "usage data is unavailable: the ClickHouse query failed",
}
_UNAVAILABLE = (
    "ClickHouse (or the JWKS) cannot be reached, or the usage figures held through a ClickHouse outage are"
    " older than `USAGEMETER_QUOTA_MAX_STALENESS_SECONDS`; retry after `Retry-After` seconds."
)


def error_responses(descriptions: dict[int, str], *, validated: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, plus 422 (when ``validated``) and 503, with examples."""
    documented: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": text, "content": _example(_EXAMPLES[code])}
        for code, text in descriptions.items()
        if code != status.HTTP_422_UNPROCESSABLE_CONTENT
    }
    if validated:
        documented[status.HTTP_422_UNPROCESSABLE_CONTENT] = {
            "model": ValidationErrorBody,
            "description": descriptions.get(status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid parameters or body."),
        }
    documented[status.HTTP_503_SERVICE_UNAVAILABLE] = {
        "model": ErrorBody,
        "description": _UNAVAILABLE,
        "content": _example(_EXAMPLES[status.HTTP_503_SERVICE_UNAVAILABLE]),
    }
    return documented


def _example(detail: str) -> dict[str, Any]:
    return {"application/json": {"example": {"detail": detail}}}
