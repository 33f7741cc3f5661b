"""Metering FastAPI (or any Starlette) routes as features. Requires the ``[fastapi]`` extra.

Mark routes by a mapping on the middleware, or per route with a dependency::

    from usagemeter_instrumentation.fastapi import UsageMeteringMiddleware, metered

    app.add_middleware(UsageMeteringMiddleware, features={("POST", "/chat"): "chat_messages"})

    @app.post("/generate", dependencies=[Depends(metered("ai_content_generation"))])
    async def generate(...): ...

A use is counted once the response has been sent in full with a counted status (2xx by default).
The user is resolved when the response ends, so an authentication dependency or the endpoint
can still set it; by default it is ``request.state.user_id``.

An endpoint of a quantity feature reports what the request used with :func:`record_usage`, and that
quantity is counted instead of one use, under the same rule::

    @app.post("/complete", dependencies=[Depends(metered("ai_tokens"))])
    async def complete(request: Request, body: Prompt) -> Completion:
        completion = await model.complete(body)
        record_usage(request, completion.total_tokens, model=completion.model)
        return completion
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Container, Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usagemeter_instrumentation._api import track_feature_use
from usagemeter_instrumentation._once import OnceLogger

__all__ = [
    "DEFAULT_COUNTED_STATUSES",
    "UsageMeteringMiddleware",
    "UserResolver",
    "metered",
    "record_usage",
    "user_from_state",
]

UserResolver = Callable[[Request], "str | None"]
#: Responses with these statuses count as uses unless the middleware is told otherwise.
DEFAULT_COUNTED_STATUSES: Container[int] = range(200, 300)
ANY_METHOD = "*"

_logger = logging.getLogger("usagemeter_instrumentation")
_once = OnceLogger(_logger)
# Where the middleware collects the features that ``metered`` dependencies mark during one request.
_PENDING_SCOPE_KEY = "usagemeter.features"
# Where ``record_usage`` keeps the quantities an endpoint reported during one request.
_RECORDED_SCOPE_KEY = "usagemeter.recorded"
_FINAL_MESSAGES = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


def user_from_state(request: Request) -> str | None:
    """The default user resolver: ``request.state.user_id``, as set by authentication or the endpoint."""
    user = getattr(request.state, "user_id", None)
    return None if user is None else str(user)


@dataclass(frozen=True)
class _Use:
    feature_key: str
    user_resolver: UserResolver | None


@dataclass(frozen=True)
class _Recorded:
    """A quantity an endpoint reported, for one feature of the route or (``None``) for its only one."""

    feature_key: str | None
    amount: int | float
    dimensions: dict[str, object]


def record_usage(
    request: Request, amount: int | float, *, feature_key: str | None = None, **dimensions: object
) -> None:
    """Report the quantity this request used of its metered feature (tokens, bytes, …).

    Call it from the endpoint of a route metered by :func:`metered` or the middleware's mapping; the
    quantity is counted instead of one use when the response is counted (sent in full with a counted
    status), and calls add up. ``feature_key`` names the feature when the route meters several.
    ``dimensions`` are passed on as metadata (``model="gpt-4o"``): configured dimension attributes go on
    the ``feature.usage`` point. An amount of 0 counts nothing. Never raises.
    """
    try:
        recorded = request.scope.setdefault(_RECORDED_SCOPE_KEY, [])
        recorded.append(_Recorded(feature_key, amount, dimensions))
    except Exception:  # metering must never fail a request
        _once.warning("record-usage", "usagemeter could not keep a request's usage", exc_info=True)


class UsageMeteringMiddleware:
    """Pure ASGI middleware that counts uses of metered routes; responses pass through untouched.

    ``features`` maps ``(method, path)`` to a feature key; ``path`` is the route's path template
    as declared (``/documents/{document_id}/export``) or the literal request path, and method
    ``"*"`` matches every method. Routes using the :func:`metered` dependency are counted too.
    ``user_resolver(request)`` names the user (default :func:`user_from_state`); a resolver that
    raises or finds no user is logged once and nothing is counted. Only responses sent in full
    with a status in ``count_statuses`` are counted. Metering never raises into the application.
    """

    def __init__(
        self,
        app: ASGIApp,
        features: Mapping[tuple[str, str], str] | None = None,
        *,
        user_resolver: UserResolver | None = None,
        count_statuses: Container[int] = DEFAULT_COUNTED_STATUSES,
    ) -> None:
        self.app = app
        self.features = {(method.upper(), path): key for (method, path), key in (features or {}).items()}
        self.user_resolver = user_resolver or user_from_state
        self.count_statuses = count_statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marked: list[_Use] = []
        scope[_PENDING_SCOPE_KEY] = marked
        response = _ResponseWatch(send)
        try:
            await self.app(scope, receive, response.send)
        finally:
            # Counted even if the application raises afterwards (e.g. in a background task): the client got it.
            if response.complete and response.status in self.count_statuses:
                self._count(scope, marked)

    def _count(self, scope: Scope, marked: list[_Use]) -> None:
        try:
            uses = [*marked]
            route_feature = self._route_feature(scope)
            if route_feature is not None:
                uses.append(_Use(route_feature, None))
            if uses:
                request = Request(scope)
                single = len(uses) == 1
                for use in uses:
                    _count_use(use.feature_key, use.user_resolver or self.user_resolver, request, single)
            elif scope.get(_RECORDED_SCOPE_KEY):
                _once.warning(
                    "unmetered-usage", "usagemeter got record_usage on route %s, which meters no feature", scope["path"]
                )
        except Exception:  # metering must never fail a request
            _once.warning("middleware", "usagemeter could not meter a request", exc_info=True)

    def _route_feature(self, scope: Scope) -> str | None:
        if not self.features:
            return None
        method = scope["method"].upper()
        route_path = getattr(scope.get("route"), "path", None)
        for path in (route_path, scope["path"]):
            if path is None:
                continue
            key = self.features.get((method, path)) or self.features.get((ANY_METHOD, path))
            if key is not None:
                return key
        return None


class _ResponseWatch:
    """Passes every message on unchanged, noting the status and whether the response was sent in full."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self.complete = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        await self._send(message)
        if kind == "http.response.start":
            self.status = message["status"]
        elif (kind == "http.response.body" and not message.get("more_body", False)) or kind in _FINAL_MESSAGES:
            self.complete = True


def metered(feature_key: str, *, user_resolver: UserResolver | None = None) -> Callable[..., AsyncIterator[None]]:
    """A dependency marking its route as a use of ``feature_key``: ``Depends(metered("document_export"))``.

    Under :class:`UsageMeteringMiddleware` the use is counted by the middleware's rules (full
    response with a counted status), with ``user_resolver`` or else the middleware's resolver.
    Without the middleware it is counted when the endpoint returns without raising, and the user
    comes from ``user_resolver`` or :func:`user_from_state`.
    """

    async def metered_feature(request: Request) -> AsyncIterator[None]:
        marked = request.scope.get(_PENDING_SCOPE_KEY)
        if isinstance(marked, list):
            marked.append(_Use(feature_key, user_resolver))
            yield
            return
        yield  # an exception from the endpoint is raised here, so failed calls are not counted
        _count_use(feature_key, user_resolver or user_from_state, request, True)

    metered_feature.__name__ = f"metered_{feature_key}"
    return metered_feature


def _count_use(feature_key: str, resolver: UserResolver, request: Request, only_feature: bool) -> None:
    """Count the use of ``feature_key``: the quantities the endpoint recorded for it, else one use."""
    try:
        user = resolver(request)
    except Exception:
        _once.warning("resolver", "usagemeter's user resolver failed; the request is not metered", exc_info=True)
        return
    if not user:
        _once.warning(f"no-user:{feature_key}", "usagemeter found no user for a request to feature %s", feature_key)
        return
    recorded = _recorded_for(request.scope.get(_RECORDED_SCOPE_KEY) or (), feature_key, only_feature)
    if recorded is None:
        track_feature_use(feature_key, user)
        return
    for use in recorded:
        track_feature_use(feature_key, user, use.amount, **use.dimensions)


def _recorded_for(recorded: Iterable[_Recorded], feature_key: str, only_feature: bool) -> list[_Recorded] | None:
    """What the endpoint recorded for ``feature_key`` (unnamed records count for a route's only feature)."""
    uses = [use for use in recorded if use.feature_key == feature_key or (use.feature_key is None and only_feature)]
    if not uses and not only_feature and any(use.feature_key is None for use in recorded):
        _once.warning(
            f"ambiguous-usage:{feature_key}",
            "usagemeter cannot tell which feature a quantity is for; pass feature_key to record_usage",
        )
    return uses or None
