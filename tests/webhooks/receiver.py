"""A webhook receiver process for the tests: verifies Standard Webhooks signatures and records every delivery.

    python -m tests.webhooks.receiver --port N

It serves endpoints by path (``/hooks/a``, ``/hooks/b``, …). A POST to one is a delivery: its headers and
signature are checked with the path's secret (answered 401 when they do not verify, recorded either way),
then answered with the status the test set for that path (204 by default). Control, as JSON under
``/_control``: ``POST /_control/secret {"endpoint", "secret"}``, ``POST /_control/respond {"endpoint",
"status", "times" (null: until told otherwise), "delay_seconds"}``, ``GET /_control/received?endpoint=…``,
``POST /_control/reset``. It prints ``listening on PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 1024 * 1024


class State:
    """Secrets, planned answers and what arrived, per endpoint path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[str, str] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}

    def answer_for(self, path: str) -> tuple[int, float]:
        """The status and delay of the next delivery to ``path``, counting down a planned answer."""
        with self.lock:
            plan = self.plans.get(path)
            if plan is None:
                return 204, 0.0
            if plan["times"] is not None:
                plan["times"] -= 1
                if plan["times"] <= 0:
                    del self.plans[path]
            return int(plan["status"]), float(plan["delay_seconds"])


STATE = State()


class Handler(BaseHTTPRequestHandler):
    """Deliveries and control requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/_control/received":
            self._send(404, {"detail": "unknown path"})
            return
        endpoint = parse_qs(parts.query).get("endpoint", [""])[0]
        with STATE.lock:
            self._send(200, list(STATE.received.get(endpoint, [])))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, {"detail": "body too large"})
            return
        body = self.rfile.read(length)
        path = urlsplit(self.path).path
        if path.startswith("/_control/"):
            self._control(path, json.loads(body or b"{}"))
        else:
            self._delivery(path, body)

    def _control(self, path: str, order: dict[str, Any]) -> None:
        with STATE.lock:
            if path == "/_control/secret":
                STATE.secrets[order["endpoint"]] = order["secret"]
            elif path == "/_control/respond":
                STATE.plans[order["endpoint"]] = {
                    "status": order["status"],
                    "times": order.get("times"),
                    "delay_seconds": order.get("delay_seconds", 0),
                }
            elif path == "/_control/reset":
                STATE.secrets.clear()
                STATE.plans.clear()
                STATE.received.clear()
            else:
                self._send(404, {"detail": "unknown control"})
                return
        self._send(200, {"ok": True})

    def _delivery(self, path: str, body: bytes) -> None:
        headers = {key.lower(): value for key, value in self.headers.items()}
        parsed: Any = None
        with STATE.lock:
            secret = STATE.secrets.get(path)
        try:
            if secret is None:
                raise WebhookVerificationError("no secret for this endpoint")
            parsed = Webhook(secret).verify(body.decode(), headers)
            verified = True
        except (WebhookVerificationError, ValueError, UnicodeDecodeError):
            verified = False
        status, delay = STATE.answer_for(path) if verified else (401, 0.0)
        if delay:
            time.sleep(delay)
        record = {
            "webhook_id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "verified": verified,
            "answered": status,
            "body": parsed,
            "received_at": time.time(),
        }
        with STATE.lock:
            STATE.received.setdefault(path, []).append(record)
        self._send(status, None)

    def _send(self, status: int, payload: object) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and status != 204:
            self.wfile.write(data)


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description="A Standard Webhooks receiver for the tests.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
