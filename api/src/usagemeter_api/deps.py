"""Request dependencies: the caller, whose data is read, the clock, plans and a ClickHouse client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from usagemeter_api.auth import AuthError, AuthUnavailable, Principal, TokenVerifier
from usagemeter_api.plan_store import PlanStore
from usagemeter_api.plans import PlanCatalog
from usagemeter_api.pool import ClientPool
from usagemeter_clickhouse import Client

__all__ = ["Admin", "ClickHouse", "Clock", "CurrentUser", "Plans", "Store", "TargetUser", "utc_now"]

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="A JWT minted with `usagemeter token`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=_CHALLENGE)


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller named by the request's bearer token; 401 when it is missing or refused."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(credentials.credentials)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from exc
    except AuthUnavailable as exc:
        logger.warning("cannot verify an RS256 token: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the token's signing keys cannot be fetched right now",
            headers={"Retry-After": "5"},
        ) from exc


CurrentUser = Annotated[Principal, Depends(current_principal)]


def target_user(
    principal: CurrentUser,
    user_id: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="Another user's id (admins only); the caller by default."),
    ] = None,
) -> str:
    """The user whose data the request reads; 403 when a non-admin asks for someone else."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin may read another user's data")
    return user_id


TargetUser = Annotated[str, Depends(target_user)]


def utc_now() -> datetime:
    """The current time in UTC (overridable, so periods can be tested at any moment)."""
    return datetime.now(UTC)


Clock = Annotated[datetime, Depends(utc_now)]


def clickhouse_client(request: Request) -> Iterator[Client]:
    """A ClickHouse client borrowed from the app's pool for the request."""
    pool: ClientPool = request.app.state.clickhouse_pool
    with pool.client() as client:
        yield client


ClickHouse = Annotated[Client, Depends(clickhouse_client)]


def plan_store(request: Request) -> PlanStore:
    """The app's plans and assignments in ClickHouse."""
    store: PlanStore = request.app.state.plan_store
    return store


Store = Annotated[PlanStore, Depends(plan_store)]


def plan_catalog(store: Store, client: ClickHouse) -> PlanCatalog:
    """The current plans and assignments (cached for about a second)."""
    return store.catalog(client)


Plans = Annotated[PlanCatalog, Depends(plan_catalog)]


def require_admin(principal: CurrentUser) -> Principal:
    """The caller, who must be an admin; 403 otherwise."""
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this endpoint needs a token with role admin")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
