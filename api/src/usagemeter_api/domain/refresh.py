"""A background thread that runs one piece of upkeep against ClickHouse on an interval, and holds through outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from usagemeter_clickhouse import Client

__all__ = ["BackgroundRefresh"]


class BackgroundRefresh:
    """Calls ``refresh(client)`` every ``interval_seconds`` (or on :meth:`wake`) in a daemon thread until :meth:`close`.

    ``what`` names the thread. A failed call is logged as a warning once per outage, as ``task`` failed and
    what the owner does ``meanwhile``, then at debug level until one succeeds. ``task`` defaults to
    revalidating ``what`` (a store's copy of ClickHouse state).
    """

    def __init__(
        self,
        what: str,
        refresh: Callable[[Client], object],
        interval_seconds: float,
        *,
        meanwhile: str,
        task: str | None = None,
    ) -> None:
        self._what = what
        self._task = task or f"revalidating the {what}"
        self._meanwhile = meanwhile
        self._refresh = refresh
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
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

    def wake(self) -> None:
        """Run the next call now rather than at the end of the interval."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def failed(self, exc: Exception) -> None:
        """Note a failed call: a warning for the first of an outage, debug for the rest."""
        if not self._failing:
            self._logger.warning("%s failed; %s: %s", self._task, self._meanwhile, exc)
        else:
            self._logger.debug("%s failed again: %s", self._task, exc)
        self._failing = True

    def succeeded(self) -> None:
        """Note a call that worked, so the next failure warns again."""
        if self._failing:
            self._logger.info("%s works again", self._task)
        self._failing = False

    def _run(self, client_factory: Callable[[], Client]) -> None:
        client: Client | None = None
        try:
            while not self._stop.is_set():
                # Cleared before the call, so a wake during it runs the next one at once.
                self._wake.clear()
                try:
                    client = client or client_factory()
                    self._refresh(client)
                    self.succeeded()
                except Exception as exc:
                    self.failed(exc)
                self._wake.wait(self._interval)
        finally:
            if client is not None:
                client.close()
