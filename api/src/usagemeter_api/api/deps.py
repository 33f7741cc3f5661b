"""Request dependencies: the app's services, the caller, whose data is read, the clock, plans, a ClickHouse client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, TypeVar

from clickhouse_connect.driver.exceptions import Error as ClickHouseError
from fastapi import Depends, Header, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError

from usagemeter_api.core.security import Principal, TokenVerifier
from usagemeter_api.domain.grants import GrantStore
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import PlanCatalog
from usagemeter_api.domain.ranges import AnalyticsPeriod, Interval, UsageRange, usage_range
from usagemeter_api.domain.webhooks.service import Webhooks
from usagemeter_api.errors import AuthError, AuthUnavailable, ClickHouseUnavailable
from usagemeter_api.schemas.quota_check import OTHER_USER_DESCRIPTION
from usagemeter_api.services import Services
from usagemeter_clickhouse import Client

__all__ = [
    "BEARER_SECURITY",
    "Admin",
    "AskedRange",
    "ClickHouse",
    "Clock",
    "CurrentUser",
    "Grants",
    "IdempotencyKey",
    "OtherUserId",
    "Plans",
    "ServicesDep",
    "Store",
    "TargetUser",
    "WebhooksDep",
    "authenticate",
    "plan_catalog",
    "query_model",
    "services_of",
    "whose_data",
]

logger = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def services_of(request: Request) -> Services:
    """The services of the app serving ``request`` (stored once by :func:`usagemeter_api.create_app`)."""
    services: Services = request.app.state.services
    return services


async def app_services(request: Request) -> Services:
    """The app's services, as a dependency."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(app_services)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=_CHALLENGE)


class _BearerPrincipal(HTTPBearer):
    """The bearer scheme (as documented in the OpenAPI) resolved straight to the verified caller.

    One dependency rather than a scheme and a verifier on top of it: every request pays
    for each dependency resolved, and this one is on every authenticated request.
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await authenticate(request)


async def authenticate(request: Request) -> Principal:
    """The caller named by the request's bearer token; 401 when it is missing or refused."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'")
    verifier = services_of(request).token_verifier
    return verifier.cached(token) or await _verified(verifier, token)


async def _verified(verifier: TokenVerifier, token: str) -> Principal:
    try:
        # A first sight may fetch signing keys over the network, so it runs off the event loop.
        return await run_in_threadpool(verifier.verify, token)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from exc
    except AuthUnavailable as exc:
        logger.warning("cannot verify an RS256 token: %s", exc)
        raise AuthUnavailable("the token's signing keys cannot be fetched right now") from exc


#: The caller named by the request's bearer token; 401 when it is missing or refused.
current_principal = _BearerPrincipal(
    auto_error=False, scheme_name="HTTPBearer", description="A JWT minted with `usagemeter token`."
)

CurrentUser = Annotated[Principal, Depends(current_principal)]

#: The OpenAPI security requirement of an operation that calls :func:`authenticate` itself.
BEARER_SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}]}


#: The ``user_id`` query parameter: whose data to read.
OtherUserId = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description=OTHER_USER_DESCRIPTION),
]


_Query = TypeVar("_Query", bound=BaseModel)


def query_model(model: type[_Query], request: Request) -> _Query:
    """``request``'s query parameters validated as ``model``; FastAPI's own 422 when they are not valid."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def whose_data(principal: Principal, user_id: str | None) -> str:
    """The user whose data the request reads; 403 when a non-admin asks for someone else."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin may read another user's data")
    return user_id


async def target_user(principal: CurrentUser, user_id: OtherUserId = None) -> str:
    """The user whose data the request reads (``user_id`` for admins, else the caller)."""
    return whose_data(principal, user_id)


TargetUser = Annotated[str, Depends(target_user)]


async def current_time(request: Request) -> datetime:
    """The current UTC time by the app's clock (``create_app(clock=...)``, so periods can be tested at any moment)."""
    return services_of(request).clock()


Clock = Annotated[datetime, Depends(current_time)]


def clickhouse_client(request: Request) -> Iterator[Client]:
    """A ClickHouse client borrowed from the app's pool for the request."""
    with services_of(request).pool.client() as client:
        yield client


ClickHouse = Annotated[Client, Depends(clickhouse_client)]


async def plan_store(request: Request) -> PlanStore:
    """The app's plans and assignments in ClickHouse."""
    return services_of(request).plan_store


Store = Annotated[PlanStore, Depends(plan_store)]


async def plan_catalog(request: Request) -> PlanCatalog:
    """The current plans and assignments: the store's snapshot, revalidated off the event loop when stale.

    When ClickHouse cannot be read the last good catalog answers; only a process that
    never read one answers 503.
    """
    services = services_of(request)
    store = services.plan_store
    snapshot = store.snapshot()
    if snapshot is not None:
        return snapshot
    try:
        return await services.pool.call(store.catalog)
    except (ClickHouseUnavailable, ClickHouseError) as exc:
        held = store.revalidation_failed(exc)
        if held is None:
            raise
        return held


Plans = Annotated[PlanCatalog, Depends(plan_catalog)]


async def require_admin(principal: CurrentUser) -> Principal:
    """The caller, who must be an admin; 403 otherwise."""
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this endpoint needs a token with role admin")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]


def asked_range(
    now: Clock,
    period: Annotated[
        AnalyticsPeriod | None,
        Query(description="The current UTC day, ISO week or calendar month (default month); not with from/to."),
    ] = None,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Range start, ISO 8601 (UTC when no offset is given), read to the minute."),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(alias="to", description="Range end (exclusive), ISO 8601, after `from`; at most 31 days for hours."),
    ] = None,
    interval: Annotated[Interval, Query(description="Series bucket: UTC hour or UTC day.")] = "day",
) -> UsageRange:
    """The range an analytics request asks for; 422 when it is malformed, reversed or too long."""
    return usage_range(now, period, start, end, interval)


AskedRange = Annotated[UsageRange, Depends(asked_range)]


async def grant_store(request: Request) -> GrantStore:
    """The app's live grants, held in memory."""
    return services_of(request).grants


Grants = Annotated[GrantStore, Depends(grant_store)]

#: The ``Idempotency-Key`` header: a retried request with the same key records one grant or correction.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="Any unique string per intended change; a retry with the same key records it once.",
    ),
]


async def webhooks_of(request: Request) -> Webhooks:
    """The app's threshold webhooks; 503 when this API runs without them (``USAGEMETER_WEBHOOKS=false``)."""
    webhooks = services_of(request).webhooks
    if webhooks is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="webhooks are turned off on this API")
    return webhooks


WebhooksDep = Annotated[Webhooks, Depends(webhooks_of)]
