"""A uvicorn server hosted in the caller's event loop, next to other servers: the OTLP/HTTP receiver's, the API's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class HostedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program hosting the event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Signals belong to the hosting program."""
        yield
