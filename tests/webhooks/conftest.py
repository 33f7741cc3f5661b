"""The webhook receiver process, and the API fixtures of tests/api (the app on the test's own database)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import clickhouse, make_api, migrated_template  # noqa: F401
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A running receiver process (tests/webhooks/receiver.py) and its control calls."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def url(self, path: str) -> str:
        """The URL of the endpoint ``path`` (``/hooks/a``)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Start the process on its port (again after :meth:`stop`: it forgets its secrets and deliveries)."""
        command = [sys.executable, "-m", "tests.webhooks.receiver", "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("listening"), f"the receiver did not start: {line!r}"

    def stop(self) -> None:
        """Stop the process: deliveries find nothing listening."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _control(self, path: str, body: dict[str, Any]) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/_control/{path}", json=body, timeout=5).raise_for_status()

    def set_secret(self, path: str, secret: str) -> None:
        """Verify deliveries to ``path`` with ``secret``."""
        self._control("secret", {"endpoint": path, "secret": secret})

    def respond(self, path: str, status: int, times: int | None = None, delay_seconds: float = 0) -> None:
        """Answer the next ``times`` deliveries to ``path`` (all when None) with ``status``, after ``delay_seconds``."""
        self._control("respond", {"endpoint": path, "status": status, "times": times, "delay_seconds": delay_seconds})

    def received(self, path: str) -> list[dict[str, Any]]:
        """Every delivery to ``path`` so far, in arrival order."""
        answer = httpx.get(f"http://127.0.0.1:{self.port}/_control/received", params={"endpoint": path}, timeout=5)
        answer.raise_for_status()
        return list(answer.json())

    def wait_for(self, path: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """The deliveries to ``path`` once there are ``count``; fails the test if they do not come in time."""
        got = wait_for(lambda: (found := self.received(path)) and len(found) >= count and found, timeout)
        if not got or len(got) < count:
            pytest.fail(f"{count} deliveries to {path} did not arrive within {timeout} s: {self.received(path)}")
        return list(got)


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver process of the test's own, stopped at the end."""
    receiver = Receiver()
    yield receiver
    receiver.stop()
