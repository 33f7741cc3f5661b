"""Logging that reports each kind of problem once, so a hot path cannot flood the host's logs."""

from __future__ import annotations

import logging
import threading


class OnceLogger:
    """Logs a warning the first time each kind is seen; later occurrences are dropped."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        """Log ``message`` unless a warning of ``kind`` was already logged."""
        with self._lock:
            if kind in self._seen:
                return
            self._seen.add(kind)
        self._logger.warning(message, *args, exc_info=exc_info)

    def reset(self) -> None:
        """Forget the kinds seen, so they are reported again."""
        with self._lock:
            self._seen.clear()
