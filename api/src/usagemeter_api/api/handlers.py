"""The edge of the error tree: each :mod:`usagemeter_api.errors` branch (and ClickHouse's errors) as an HTTP answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from clickhouse_connect.driver.exceptions import Error as ClickHouseError
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from usagemeter_api.errors import InvalidRange, PlanConflict, Unavailable, UnknownPlan

__all__ = ["RETRY_AFTER_SECONDS", "install_handlers"]

logger = logging.getLogger(__name__)

#: The ``Retry-After`` of every 503: what is away (ClickHouse, the JWKS) is retried about this often.
RETRY_AFTER_SECONDS = 5

_Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def install_handlers(app: FastAPI) -> None:
    """Answer the API's errors that reach the app with their status and ``{"detail": ...}``."""
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(ClickHouseError, _clickhouse_failed)
    app.add_exception_handler(UnknownPlan, _with_status(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(PlanConflict, _with_status(status.HTTP_409_CONFLICT))
    app.add_exception_handler(InvalidRange, _with_status(status.HTTP_422_UNPROCESSABLE_CONTENT))


def _with_status(code: int) -> _Handler:
    async def answer(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return answer


def _service_unavailable(detail: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _service_unavailable(str(exc))


async def _clickhouse_failed(request: Request, exc: Exception) -> JSONResponse:
    logger.error("ClickHouse query for %s failed: %s", request.url.path, exc)
    return _service_unavailable("usage data is unavailable: the ClickHouse query failed")
