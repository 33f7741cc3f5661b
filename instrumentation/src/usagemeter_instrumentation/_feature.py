"""Metering by decoration: ``@feature("key")`` on a function, or ``with feature("key", user_id=...)``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from usagemeter_instrumentation._api import track_feature_use
from usagemeter_instrumentation._once import OnceLogger

F = TypeVar("F", bound=Callable[..., Any])
UserResolver = Callable[[], "str | None"]

current_user: ContextVar[str | None] = ContextVar("usagemeter_current_user", default=None)
_once = OnceLogger(logging.getLogger("usagemeter_instrumentation"))


def set_current_user(user_id: str | None) -> Token[str | None]:
    """Make ``user_id`` the user of metered features in this context (e.g. per request)."""
    return current_user.set(user_id)


def reset_current_user(token: Token[str | None]) -> None:
    """Undo a :func:`set_current_user`."""
    current_user.reset(token)


class feature:  # lower case: it reads as a decorator and context manager, like contextlib.suppress
    """Count a use of ``feature_key`` when the decorated call or ``with`` block finishes without raising.

    The user is, in order: ``user_id``; the decorated function's argument named ``user_arg``;
    ``resolve_user()``; the context's :data:`current_user`. Set ``count_errors`` to count uses
    that raise too. ``amount`` and metadata are passed on to :func:`track_feature_use`; in a ``with``
    block the amount may be set once known (``with feature("ai_tokens") as use: ...; use.amount = n``).
    """

    def __init__(
        self,
        feature_key: str,
        *,
        user_id: str | None = None,
        user_arg: str = "user_id",
        resolve_user: UserResolver | None = None,
        count_errors: bool = False,
        amount: int | float = 1,
        **metadata: object,
    ) -> None:
        self.feature_key = feature_key
        self.user_id = user_id
        self.user_arg = user_arg
        self.resolve_user = resolve_user
        self.count_errors = count_errors
        self.amount = amount
        self.metadata = metadata

    def __enter__(self) -> feature:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if kind is None or self.count_errors:
            self._count(None)

    def __call__(self, function: F) -> F:
        signature = inspect.signature(function)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._metering(signature, args, kwargs):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._metering(signature, args, kwargs):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    @contextmanager
    def _metering(self, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[None]:
        try:
            yield
        except BaseException:
            if self.count_errors:
                self._count(_argument(signature, self.user_arg, args, kwargs))
            raise
        self._count(_argument(signature, self.user_arg, args, kwargs))

    def _count(self, from_argument: object) -> None:
        try:
            user = self.user_id or from_argument or (self.resolve_user() if self.resolve_user else None)
            user = user or current_user.get()
        except Exception:  # a failing resolver must not fail the metered call
            _once.warning("resolver", "usagemeter could not resolve the user of a feature use", exc_info=True)
            return
        if not user:
            _once.warning(f"no-user:{self.feature_key}", "usagemeter found no user for feature %s", self.feature_key)
            return
        track_feature_use(self.feature_key, str(user), self.amount, **self.metadata)


def _argument(signature: inspect.Signature, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    if name in kwargs:
        return kwargs[name]
    try:
        return signature.bind_partial(*args, **kwargs).arguments.get(name)
    except TypeError:
        return None
