"""A pool of ClickHouse clients shared by the request threads.

A chDB client serialises its calls on one engine handle, so concurrent requests
each borrow a client of their own. Borrowing never waits: a request that finds no
idle client opens one, and at most ``size`` idle clients are kept. Nothing is
reserved across a request's awaits, so a request cancelled mid-way (its client
disconnected) can lose at most its own client, never the pool's capacity; the
server's thread pool is what bounds concurrency.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from usagemeter_api.errors import ClickHouseUnavailable
from usagemeter_clickhouse import Client

__all__ = ["ClientPool"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class ClientPool:
    """Clients from ``factory``, opened on first need and reused; at most ``size`` kept idle."""

    def __init__(self, factory: Callable[[], Client], size: int = 4) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self._factory = factory
        self._size = size
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def client(self) -> Iterator[Client]:
        """Borrow a client for the duration of the ``with`` block."""
        if self._closed:
            raise ClickHouseUnavailable("the ClickHouse client pool is closed")
        borrowed = self._take_or_open()
        try:
            yield borrowed
        finally:
            self._give_back(borrowed)

    async def call(self, read: Callable[Concatenate[Client, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``read(client, *args, **kwargs)`` on a borrowed client, in the server's thread pool (off the event loop)."""

        def borrowing() -> T:
            with self.client() as client:
                return read(client, *args, **kwargs)

        return await run_in_threadpool(borrowing)

    def _give_back(self, borrowed: Client) -> None:
        with self._lock:
            keep = not self._closed and self._idle.qsize() < self._size
            if keep:
                self._idle.put(borrowed)
        if not keep:
            borrowed.close()

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

    def idle(self) -> int:
        """Clients kept for reuse now."""
        return self._idle.qsize()

    def reopen(self) -> None:
        """Lend clients again after :meth:`close`, so an app can be started more than once."""
        self._closed = False

    def close(self) -> None:
        """Close every idle client now and every borrowed one when it comes back."""
        with self._lock:
            self._closed = True
            idle = []
            while not self._idle.empty():
                idle.append(self._idle.get_nowait())
        for client in idle:
            client.close()
