"""A background thread that keeps a store's copy of ClickHouse state current, and holds it through outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from usagemeter_clickhouse import Client

__all__ = ["BackgroundRefresh"]


class BackgroundRefresh:
    """Calls ``refresh(client)`` every ``interval_seconds`` in a daemon thread until :meth:`close`.

    A failed refresh is logged as a warning once per outage (``what`` names the state, ``held`` what the
    store answers from meanwhile), then at debug level until one succeeds.
    """

    def __init__(self, what: str, held: str, refresh: Callable[[Client], object], interval_seconds: float) -> None:
        self._what = what
        self._held = held
        self._refresh = refresh
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._logger = logging.getLogger(refresh.__module__)

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Start the thread (once; with a positive interval)."""
        if self._interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        name = f"usagemeter-{self._what.replace(' ', '-')}"
        self._thread = threading.Thread(target=self._run, args=(client_factory,), name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def failed(self, exc: Exception) -> None:
        """Note a failed refresh: a warning for the first of an outage, debug for the rest."""
        if not self._failing:
            self._logger.warning(
                "revalidating the %s failed; answering from the held %s: %s", self._what, self._held, exc
            )
        else:
            self._logger.debug("revalidating the %s failed again: %s", self._what, exc)
        self._failing = True

    def succeeded(self) -> None:
        """Note a refresh that worked, so the next failure warns again."""
        if self._failing:
            self._logger.info("revalidating the %s works again", self._what)
        self._failing = False

    def _run(self, client_factory: Callable[[], Client]) -> None:
        client: Client | None = None
        try:
            while not self._stop.is_set():
                try:
                    client = client or client_factory()
                    self._refresh(client)
                    self.succeeded()
                except Exception as exc:
                    self.failed(exc)
                self._stop.wait(self._interval)
        finally:
            if client is not None:
                client.close()
