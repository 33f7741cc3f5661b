"""The product's own commands as separate processes against a ClickHouse server, as production runs them.

``usagemeter migrate``, ``usagemeter collector`` and ``usagemeter api`` are started with
the ``USAGEMETER_*`` variables an operator following docs/production.md sets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

from tests.conftest import free_port
from usagemeter_api.core.security import mint_token

#: The ingest token every collector started here accepts.
INGEST_TOKEN = "ingest-token-for-server-tests"
#: The API's JWT secret (HS256 needs 32 bytes or more).
JWT_SECRET = "server-test-jwt-secret-of-at-least-32-bytes"


def server_env(url: str, database: str, **extra: str) -> dict[str, str]:
    """The environment of a service on the server at ``url`` with ``database``; ``extra`` adds USAGEMETER_* keys."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("USAGEMETER_", "OTEL_"))}
    base.update(
        USAGEMETER_CLICKHOUSE_URL=url,
        USAGEMETER_CLICKHOUSE_DATABASE=database,
        USAGEMETER_INGEST_TOKENS=INGEST_TOKEN,
        USAGEMETER_JWT_SECRET=JWT_SECRET,
    )
    base.update({f"USAGEMETER_{key.upper()}": value for key, value in extra.items()})
    return base


def usagemeter(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a ``usagemeter`` command to its end and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "usagemeter", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def run_migrate(env: dict[str, str]) -> None:
    """``usagemeter migrate``, which must succeed."""
    result = usagemeter("migrate", env=env)
    assert result.returncode == 0, result.stderr


@dataclass
class Service:
    """A running ``usagemeter collector`` or ``usagemeter api`` process."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start (or restart) the process on the same ports and wait until it serves."""
        self._launch()
        self._wait_ready()
        return self

    def start_or_exit(self, timeout: float = 60) -> int | None:
        """Start (or restart) the process; its exit code if it ends, or None once it answers HTTP at all."""
        self._launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if (code := self.process.poll()) is not None:
                return code
            if self._answers():
                return None
            time.sleep(0.2)
        raise AssertionError(f"{self.name} neither served nor exited in {timeout} s:\n{self.output()}")

    def _launch(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "usagemeter", *self.args], stdout=out, stderr=subprocess.STDOUT, env=self.env
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        """Wait until the process has logged ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {text!r} in {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.output()}")
            if self._ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start in {timeout} s:\n{self.output()}")

    def _ready(self) -> bool:
        return self._status() == 200

    def _answers(self) -> bool:
        return self._status() is not None

    def _status(self) -> int | None:
        """The status of the readiness request, None while nothing answers it."""
        port = self.ports.get("api_port") or self.ports["http_port"]
        path = "/api/v1/health" if "api_port" in self.ports else "/metrics"
        headers = {} if "api_port" in self.ports else {"authorization": f"Bearer {INGEST_TOKEN}"}
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=2).status_code
        except httpx.HTTPError:
            return None


@dataclass
class Collector(Service):
    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['grpc_port']}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['http_port']}"

    def metrics(self) -> str:
        """The collector's /metrics text."""
        headers = {"authorization": f"Bearer {INGEST_TOKEN}"}
        return httpx.get(f"{self.http_endpoint}/metrics", headers=headers, timeout=5).text

    def metric(self, name: str) -> float:
        """One of the collector's own counters or gauges, by its name without the ``usagemeter_collector_`` prefix."""
        prefix = f"usagemeter_collector_{name} "
        for line in self.metrics().splitlines():
            if line.startswith(prefix):
                return float(line.removeprefix(prefix))
        raise KeyError(f"{self.name} reports no {name}")

    def wait_drained(self, timeout: float = 60) -> None:
        """Wait until everything the collector acknowledged before this call is in ClickHouse.

        That is when its oldest segment not yet inserted is none or was created after the call: the collector's
        own telemetry, spooled every few seconds, does not hold the wait up.
        """
        called = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            since = self.metric("oldest_unsent_since_seconds")
            if since == 0 or since > called:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name} did not insert what it had acknowledged in {timeout} s:\n{self.output()[-3000:]}"
        )


@dataclass
class Api(Service):
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['api_port']}/api/v1"

    def get(self, path: str, bearer: str, client: httpx.Client | None = None, **params: str) -> httpx.Response:
        """``GET /api/v1{path}`` with ``bearer`` as the token (through ``client`` when given, to reuse connections)."""
        headers = {"authorization": f"Bearer {bearer}"}
        if client is None:
            return httpx.get(f"{self.base}{path}", params=params, headers=headers, timeout=30)
        return client.get(f"{self.base}{path}", params=params, headers=headers, timeout=30)


def token(user: str, admin: bool = False) -> str:
    """A JWT the APIs started here accept, for ``user`` (with the admin role when ``admin``)."""
    return mint_token(JWT_SECRET, user, admin=admin, ttl_seconds=3600, audience=None, issuer=None)


def start_collector(env: dict[str, str], data_dir: Path, name: str = "collector") -> Collector:
    """``usagemeter collector`` with a data directory (and spool) of its own, on free ports."""
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    args = ["collector", "--data-dir", str(data_dir)]
    args += ["--grpc-port", str(ports["grpc_port"]), "--http-port", str(ports["http_port"])]
    return Collector(name, args, env, data_dir.parent / f"{name}.log", ports).start()


def start_api(env: dict[str, str], log_dir: Path, name: str = "api") -> Api:
    """``usagemeter api`` on a free port."""
    ports = {"api_port": free_port()}
    return Api(name, ["api", "--api-port", str(ports["api_port"])], env, log_dir / f"{name}.log", ports).start()
