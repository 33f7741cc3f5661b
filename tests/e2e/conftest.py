"""Fixtures that run the real ``usagemeter`` command as a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


@dataclass
class RunningUp:
    """A ``usagemeter up`` process and where it listens."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    grpc_port: int
    http_port: int
    api_port: int
    log: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    def token(self, user: str, *, admin: bool = False) -> str:
        """Mint a token with ``usagemeter token``, as a user of the product would."""
        return mint(self.data_dir, user, admin=admin).stdout.strip()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_drained(self, timeout: float = 30.0) -> None:
        """Wait until the collector's spool is empty: everything acknowledged is in ClickHouse."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text
            if "\nusagemeter_collector_spool_bytes 0\n" in text:
                return
            time.sleep(0.1)
        raise AssertionError(f"the collector's spool did not drain in {timeout} s")


def usagemeter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``usagemeter`` command and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "usagemeter", *args], capture_output=True, text=True, timeout=60, env=env
    )


def mint(data_dir: Path, user: str, *, admin: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["token", "--data-dir", str(data_dir), "--user", user] + (["--admin"] if admin else [])
    result = usagemeter(*args, env=dev_env())
    assert result.returncode == 0, result.stderr
    return result


def dev_env() -> dict[str, str]:
    """The environment of a first run: no secret configured, dev mode generates one."""
    return {k: v for k, v in os.environ.items() if not k.startswith("USAGEMETER_") and not k.startswith("OTEL_")}


def start_up(data_dir: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> RunningUp:
    ports = free_port(), free_port(), free_port()
    args = [
        "up",
        "--data-dir",
        str(data_dir),
        "--grpc-port",
        str(ports[0]),
        "--http-port",
        str(ports[1]),
        "--api-port",
        str(ports[2]),
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "usagemeter", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**dev_env(), **(env or {})},
        )
    running = RunningUp(process, data_dir, *ports, log)
    _wait_healthy(running)
    return running


def _wait_healthy(running: RunningUp, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"usagemeter up exited early:\n{running.output()}")
        try:
            if httpx.get(f"{running.api}/health", timeout=2).status_code == 200 and "is up" in running.output():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"usagemeter up did not become healthy:\n{running.output()}")


def stop_up(running: RunningUp) -> int:
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
    return running.process.returncode


@pytest.fixture
def up(data_dir: Path, tmp_path: Path) -> Iterator[RunningUp]:
    """``usagemeter up`` on free ports and a fresh data directory, without demo traffic."""
    running = start_up(data_dir, tmp_path / "up.log")
    yield running
    assert stop_up(running) == 0, running.output()
