"""Verified bearer tokens, remembered until they expire so a repeat caller skips the signature check."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["VerifiedTokens"]

P = TypeVar("P")


class VerifiedTokens(Generic[P]):
    """At most ``max_entries`` tokens with what they verified to, each kept only until its ``exp``.

    The oldest entry makes room for a new one; an entry is never handed out at or after
    its expiry time (``clock`` is Unix seconds, like ``exp``).
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[P, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> P | None:
        """What ``token`` verified to, or None when it is unknown or has expired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, verified: P, expires_at: float) -> None:
        """Remember ``verified`` for ``token`` until ``expires_at`` (Unix seconds)."""
        with self._lock:
            while len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (verified, expires_at)
