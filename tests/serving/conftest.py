"""A uvicorn server with the product's connection limits, on a free port, in a loop of its own thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from usagemeter._limits import ConnectionLimits, server_options
from usagemeter._serving import start_server, stop_server
from usagemeter_collector import HostedServer as EmbeddedServer

#: Small bounds, so that a test reaches them with a few sockets and short waits.
LIMITS = ConnectionLimits(
    max_header_bytes=4096, header_timeout_seconds=0.5, body_timeout_seconds=0.5, max_connections=8, keepalive_seconds=5
)


@dataclass
class Served:
    """A running server and the means to let its blocked requests finish."""

    port: int
    loop: asyncio.AbstractEventLoop
    release_event: asyncio.Event

    def connect(self) -> socket.socket:
        """A fresh client connection."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def release(self) -> None:
        """Let every request waiting on ``GET /block`` answer."""
        self.loop.call_soon_threadsafe(self.release_event.set)


def _app(release: asyncio.Event) -> Starlette:
    async def ok(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    async def block(_: Request) -> PlainTextResponse:
        await release.wait()
        return PlainTextResponse("released")

    routes = [Route("/ok", ok), Route("/echo", echo, methods=["POST"]), Route("/block", block)]
    return Starlette(routes=routes)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start a server with ``LIMITS`` changed by the given fields; stopped after the test."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running: list[tuple[EmbeddedServer, asyncio.Task[None], Served]] = []

    def start(**changes: object) -> Served:
        async def begin() -> tuple[EmbeddedServer, asyncio.Task[None], Served]:
            release = asyncio.Event()
            options = server_options(replace(LIMITS, **changes))  # type: ignore[arg-type]
            config = uvicorn.Config(_app(release), host="127.0.0.1", port=0, log_level="warning", **options)
            server = EmbeddedServer(config)
            task = await start_server(server)
            port = server.servers[0].sockets[0].getsockname()[1]
            return server, task, Served(port, loop, release)

        started = asyncio.run_coroutine_threadsafe(begin(), loop).result(30)
        running.append(started)
        return started[2]

    yield start
    for server, task, served in running:
        served.release()
        asyncio.run_coroutine_threadsafe(stop_server(server, task), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    """The status code of the first response in ``response``."""
    return int(response.split(b" ", 2)[1])


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, read off a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body
