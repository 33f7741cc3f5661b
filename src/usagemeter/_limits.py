"""What one HTTP client may hold on a server: header bytes, header and body time, a connection slot.

uvicorn on its own reads request heads of any size and waits forever for a head
or a body that trickles in. :class:`LimitedHttpToolsProtocol` counts the bytes
of each request line and header block (431 past the bound), gives each head and
each body a deadline (408 and close past it), and :class:`ConnectionGuard`
bounds the connections of one server, making room for a new client by closing
the connection that has been idle longest. The per-request work is a few
counters and clock reads; deadlines are checked by one periodic sweep per
server, not by a timer per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["ConnectionGuard", "ConnectionLimits", "LimitedHttpToolsProtocol", "server_options"]

logger = logging.getLogger(__name__)

#: Longest pause between two deadline sweeps; shorter when a timeout is shorter.
_SWEEP_SECONDS = 1.0
#: How long a refused connection reads (and drops) what its client still sends, so the answer reaches it.
_LINGER_SECONDS = 1.0
#: ... and how much of it, so a client that keeps sending cannot keep the server busy reading.
_LINGER_BYTES = 1024 * 1024
#: The request line's fixed parts ("GET ", " HTTP/1.1\r\n") and each header's ": " and "\r\n".
_LINE_OVERHEAD, _HEADER_OVERHEAD = 16, 4


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds one HTTP server enforces on each client."""

    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int
    keepalive_seconds: int


def server_options(limits: ConnectionLimits) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that make one server enforce ``limits``."""
    guard = ConnectionGuard(limits)
    return {"http": partial(LimitedHttpToolsProtocol, guard=guard), "timeout_keep_alive": limits.keepalive_seconds}


class _Refused(Exception):
    """Stops the parser after the connection was answered and closed."""


class ConnectionGuard:
    """One server's connections: admits up to the bound and cuts off those past their deadline."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.connections: set[LimitedHttpToolsProtocol] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        shortest = min(limits.header_timeout_seconds, limits.body_timeout_seconds)
        self._interval = min(_SWEEP_SECONDS, shortest / 4)

    def admit(self, connection: LimitedHttpToolsProtocol, loop: asyncio.AbstractEventLoop) -> bool:
        """Take ``connection`` in, closing the longest-idle one when full; False when every slot is busy.

        A refused connection is watched too, so that its brief linger ends on time.
        """
        admitted = True
        if len(self.connections) >= self.limits.max_connections:
            idle = self._longest_idle()
            if idle is None:
                admitted = False
            else:
                idle.evict()
        self.connections.add(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._interval, self._sweep, loop)
        return admitted

    def release(self, connection: LimitedHttpToolsProtocol) -> None:
        """Forget a closed connection."""
        self.connections.discard(connection)

    def _longest_idle(self) -> LimitedHttpToolsProtocol | None:
        # Only at the bound: a scan of the connections, none of them running a request.
        idle = [c for c in self.connections if c.idle]
        return min(idle, key=lambda c: c.idle_since) if idle else None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.time_out(now)
        self._sweeper = loop.call_later(self._interval, self._sweep, loop) if self.connections else None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and deadlines for head and body."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        limits = guard.limits
        # Plain attributes: the hot path reads them on every request.
        self._max_head = limits.max_header_bytes
        self._header_timeout = limits.header_timeout_seconds
        self._body_timeout = limits.body_timeout_seconds
        self.deadline = math.inf  # when the head or body being read must be complete
        self.idle_since = 0.0
        self._in_head = True
        self._head_bytes = 0
        self._refused = False

    @property
    def idle(self) -> bool:
        """Whether no request of this connection is being answered (it may be reading a head)."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Take a slot (or answer 503) and start the deadline for the first request head."""
        super().connection_made(transport)
        self.idle_since = now = self.loop.time()
        self.deadline = now + self._header_timeout
        if not self.guard.admit(self, self.loop):
            self._refuse(503, "Too many connections, retry later.")

    def connection_lost(self, exc: Exception | None) -> None:
        """Free the slot."""
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, counting the bytes of a request head against the bound."""
        if self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > _LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self.deadline == math.inf:  # the first bytes of a request after a keep-alive pause
                self.deadline = self.loop.time() + self._header_timeout
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head and self._head_bytes > self._max_head:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        """Refuse a head over the bound; otherwise start the request and the body's deadline."""
        # Counted bytes may include body bytes that came with the head: only then is the head measured.
        if self._head_bytes > self._max_head and self._head_size() > self._max_head:
            self._refuse_head()
            raise _Refused
        self._in_head, self._head_bytes = False, 0
        self.deadline = self.loop.time() + self._body_timeout
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        """The request is read: no deadline until the next one begins."""
        self._in_head, self._head_bytes, self.deadline = True, 0, math.inf
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        """The connection is idle from now, for eviction's choice."""
        self.idle_since = self.loop.time()
        HttpToolsProtocol.on_response_complete(self)

    def time_out(self, now: float) -> None:
        """Close a connection whose head or body did not arrive in time (408 when nothing was answered)."""
        if self._refused:  # its lingering time is over
            self.transport.close()
            return
        if self.flow.read_paused:  # the server, not the client, is behind: wait for it
            self.deadline = now + self._body_timeout
            return
        what = "request headers" if self._in_head else "request body"
        logger.debug("closing %s: %s not received in time", self.client, what)
        if self._in_head or not self.cycle.response_started:
            self._refuse(408, f"The {what} did not arrive in time.")
        else:
            self._close()

    def evict(self) -> None:
        """Close this idle connection to make room for a new one."""
        logger.debug("closing idle connection from %s: the server is at its connection bound", self.client)
        self._close()

    def _head_size(self) -> int:
        return len(self.url) + _LINE_OVERHEAD + sum(len(n) + len(v) + _HEADER_OVERHEAD for n, v in self.headers)

    def _refuse_head(self) -> None:
        self._refuse(431, f"Request line and headers exceed {self._max_head} bytes.")

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self._stop_requests()
        if self.transport.is_closing():
            return
        self._head_bytes = 0  # from now on: what was dropped while lingering
        self.transport.write(b"".join([*head, body]))
        # Closing with unread bytes would reset the connection and could destroy the answer
        # before the client reads it: stop writing, drop what still arrives, close a little later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.deadline = self.loop.time() + _LINGER_SECONDS

    def _close(self) -> None:
        self._stop_requests()
        self.transport.close()

    def _stop_requests(self) -> None:
        self._refused, self.deadline = True, math.inf
        if self.cycle is not None and not self.cycle.response_complete:
            # The request in flight ends here: the app reads a disconnect and its answer is dropped.
            self.cycle.keep_alive = False
            self.cycle.disconnected = True
            self.cycle.message_event.set()
