"""A small pool of ClickHouse clients shared by the request threads.

A chDB client serialises its calls on one engine handle, so concurrent
requests each borrow a client of their own; the pool caps how many exist.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from usagemeter_clickhouse import Client

__all__ = ["ClickHouseUnavailable", "ClientPool"]

logger = logging.getLogger(__name__)


class ClickHouseUnavailable(Exception):
    """No ClickHouse client could be had: the pool is busy or the server cannot be reached."""


class ClientPool:
    """At most ``size`` clients from ``factory``, opened on first need and reused."""

    def __init__(self, factory: Callable[[], Client], size: int = 4, acquire_timeout: float = 10.0) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self._factory = factory
        self._acquire_timeout = acquire_timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._closed = False

    @contextmanager
    def client(self, timeout: float | None = None) -> Iterator[Client]:
        """Borrow a client for the duration of the ``with`` block."""
        if self._closed:
            raise ClickHouseUnavailable("the ClickHouse client pool is closed")
        if not self._slots.acquire(timeout=self._acquire_timeout if timeout is None else timeout):
            raise ClickHouseUnavailable("all ClickHouse clients are busy")
        try:
            borrowed = self._take_or_open()
        except BaseException:
            self._slots.release()
            raise
        try:
            yield borrowed
        finally:
            self._give_back(borrowed)
            self._slots.release()

    def _give_back(self, borrowed: Client) -> None:
        if self._closed:
            borrowed.close()
        else:
            self._idle.put(borrowed)

    def _take_or_open(self) -> Client:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return self._factory()
        except Exception as exc:
            logger.warning("cannot open a ClickHouse client: %s", exc)
            raise ClickHouseUnavailable(f"cannot connect to ClickHouse: {exc}") from exc

    def close(self) -> None:
        """Close every idle client now and every borrowed one when it comes back."""
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
