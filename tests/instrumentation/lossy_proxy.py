"""A TCP proxy on 127.0.0.1 that forwards OTLP requests to a receiver and can drop the connection instead of the answer.

The receiver gets and stores the request as usual; the proxy closes the client's connection when the
answer starts, so the client sees a dropped connection for a request that was stored. Over gRPC the
answer is the first HEADERS frame of a stream (HTTP/2 frames are read just enough to find it); over
HTTP/1.1 it is the first bytes the receiver sends back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

_FRAME_HEADER = 9
_HEADERS_FRAME = 0x1


class AnswerDroppingProxy:
    """Forwards everything between clients and ``upstream_port``; drops the next answers when told to."""

    def __init__(self, upstream_port: int, *, http2: bool) -> None:
        self._upstream_port = upstream_port
        self._http2 = http2
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._to_drop = 0
        self.dropped = 0
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def drop_answers(self, count: int = 1) -> None:
        """Drop the connection instead of forwarding each of the next ``count`` answers."""
        with self._lock:
            self._to_drop += count

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        except OSError:
            _close(client)
            return
        with self._lock:
            self._sockets += [client, upstream]
        threading.Thread(target=self._forward_requests, args=(client, upstream), daemon=True).start()
        self._forward_answers(upstream, client)

    def _forward_requests(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                upstream.sendall(data)
        _close(upstream)

    def _forward_answers(self, upstream: socket.socket, client: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                buffer += data
                pieces, buffer = self._split(buffer)
                for piece, is_answer in pieces:
                    if is_answer and self._take_drop():
                        _close(client)
                        _close(upstream)
                        return
                    client.sendall(piece)
        _close(client)

    def _split(self, buffer: bytes) -> tuple[list[tuple[bytes, bool]], bytes]:
        """Complete pieces of ``buffer`` (whether each starts an answer), and the incomplete rest."""
        if not self._http2:
            return [(buffer, True)], b""
        pieces = list(_frames(buffer))
        used = sum(len(piece) for piece, _ in pieces)
        return pieces, buffer[used:]

    def _take_drop(self) -> bool:
        with self._lock:
            if self._to_drop <= 0:
                return False
            self._to_drop -= 1
            self.dropped += 1
            return True


def _frames(buffer: bytes) -> Iterator[tuple[bytes, bool]]:
    """Whole HTTP/2 frames at the start of ``buffer``; true for a HEADERS frame on a stream (an answer)."""
    offset = 0
    while len(buffer) - offset >= _FRAME_HEADER:
        length = int.from_bytes(buffer[offset : offset + 3], "big")
        end = offset + _FRAME_HEADER + length
        if end > len(buffer):
            return
        kind = buffer[offset + 3]
        stream = int.from_bytes(buffer[offset + 5 : offset + 9], "big") & 0x7FFFFFFF
        yield buffer[offset:end], kind == _HEADERS_FRAME and stream != 0
        offset = end


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
