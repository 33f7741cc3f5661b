"""Another origin on loopback that records everything reaching it: the place a leaked token would go."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["OtherOrigin"]

# What the page would draw if it ever read from here: a plausible answer, open to every origin.
_ANSWER = json.dumps(
    {
        "user_id": "elsewhere",
        "plan": {"id": "free", "name": "Elsewhere"},
        "period_start": "2026-01-01T00:00:00Z",
        "period_end": "2026-02-01T00:00:00Z",
        "quotas": [],
    }
).encode()


class _Recorder(BaseHTTPRequestHandler):
    server: _Listener

    def _answer(self) -> None:
        self.server.origin.requests.append(f"{self.command} {self.path} auth={'Authorization' in self.headers}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Accept")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded on the origin, not logged."""


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, family: socket.AddressFamily, host: str, port: int, origin: OtherOrigin) -> None:
        self.address_family = family
        self.origin = origin
        super().__init__((host, port), _Recorder)

    def get_request(self) -> tuple[socket.socket, Any]:
        # Counted on accept, so even a connection that never sends a request (a TLS hello) shows up.
        request, address = super().get_request()
        self.origin.connections.append(str(address[0]))
        return request, address


class OtherOrigin:
    """Listens on one port on both 127.0.0.1 and ::1; ``connections`` and ``requests`` list what arrived."""

    def __init__(self) -> None:
        self.connections: list[str] = []
        self.requests: list[str] = []
        self._listeners = self._listen()
        self.port = int(self._listeners[0].server_address[1])
        for listener in self._listeners:
            threading.Thread(target=listener.serve_forever, name="other-origin", daemon=True).start()

    def _listen(self) -> list[_Listener]:
        for _ in range(50):
            ipv4 = _Listener(socket.AF_INET, "127.0.0.1", 0, self)
            try:
                ipv6 = _Listener(socket.AF_INET6, "::1", int(ipv4.server_address[1]), self)
            except OSError:  # that port is taken on ::1: try another
                ipv4.server_close()
                continue
            return [ipv4, ipv6]
        raise RuntimeError("no port free on both 127.0.0.1 and ::1")

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def reached(self) -> list[str]:
        """Every connection and request so far (empty when nothing arrived)."""
        return [f"connection from {peer}" for peer in self.connections] + list(self.requests)

    def close(self) -> None:
        """Stop both listeners."""
        for listener in self._listeners:
            listener.shutdown()
            listener.server_close()
