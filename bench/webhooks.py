"""Webhook latency: from a collector acknowledging the usage that crosses a threshold to the event's POST arriving.

    usagemeter bench webhooks [--samples 30] [--modes embedded,server]

Embedded: ``usagemeter up`` in a subprocess. Server: a real ClickHouse 26.9 server process
(tests/clickhouse_server.py) with ``usagemeter collector`` and ``usagemeter api`` as processes of their
own, as production runs them. In both, this process is the host service (usagemeter_instrumentation
over OTLP/gRPC) and the receiver (a signature-checking HTTP server on loopback). Each sample is a fresh
user of the free plan using 8 of its 10 document exports: ``force_flush()`` returns once the collector
acknowledged them, and the clock runs until quota.threshold_reached (80 %) arrives.

Baseline in the same run, sample for sample: the quota endpoint counting the same use, polled every
10 ms from the acknowledgement: how soon the API can know of the crossing at all.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from _common import free_port, publish, wait_ready
from standardwebhooks.webhooks import Webhook

import usagemeter_instrumentation as usagemeter

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from tests.clickhouse_server import ClickHouseServer

FEATURE = "document_export"
USES = 8
TARGET_P95_SECONDS = 5.0
POLL_SECONDS = 0.01
SECRET = "bench-webhooks-secret-0123456789abcdef-0123"


class Receiver:
    """An HTTP server on loopback that checks each delivery's signature and notes when each user's event came."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrived: dict[str, float] = {}
        self.refused = 0
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.delivered(body, dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"

    def delivered(self, body: bytes, headers: dict[str, str]) -> None:
        """Note a verified quota.threshold_reached by its user."""
        at = time.monotonic()
        try:
            event = Webhook(self.secret).verify(body, headers)
        except Exception:
            self.refused += 1
            return
        if event["type"] == "quota.threshold_reached":
            with self._condition:
                self.arrived.setdefault(event["user_id"], at)
                self._condition.notify_all()

    def wait(self, user: str, timeout: float = 60) -> float:
        """When ``user``'s event arrived (monotonic)."""
        with self._condition:
            if not self._condition.wait_for(lambda: user in self.arrived, timeout):
                raise RuntimeError(f"no webhook for {user} within {timeout} s")
            return self.arrived[user]

    def close(self) -> None:
        self._server.shutdown()


def _token(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "usagemeter", "token", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _used(client: httpx.Client, user: str) -> float:
    response = client.get(f"/api/v1/quotas/{FEATURE}", params={"user_id": user})
    response.raise_for_status()
    return float(response.json()["used"])


def sample(api: httpx.Client, receiver: Receiver, user: str) -> tuple[float, float]:
    """Seconds from the collector's acknowledgement to the quota counting the use, and to the webhook arriving."""
    usagemeter.track_feature_use(FEATURE, user, USES)
    if not usagemeter.force_flush():
        raise RuntimeError("the collector did not acknowledge the export")
    acknowledged = time.monotonic()
    while _used(api, user) < USES:
        time.sleep(POLL_SECONDS)
    counted = time.monotonic() - acknowledged
    return counted, receiver.wait(user) - acknowledged


def measure(mode: str, api_base: str, env: dict[str, str], samples: int, grpc: str) -> tuple[list[float], list[float]]:
    """Register the receiver, then take ``samples`` samples, each with a user of its own."""
    admin = _token(env, *env_token_args(env), "--user", "bench-admin", "--admin")
    receiver = Receiver()
    headers = {"Authorization": f"Bearer {admin}"}
    body = {"url": receiver.url, "events": ["quota.threshold_reached"]}
    created = httpx.post(f"{api_base}/api/v1/admin/webhooks", json=body, headers=headers, timeout=10)
    created.raise_for_status()
    receiver.secret = created.json()["secret"]
    # The first detection pass after the endpoint: heartbeat and endpoints are read in the background.
    time.sleep(3)
    usagemeter.configure(f"bench-webhooks-{mode}", grpc)
    counted: list[float] = []
    arrived: list[float] = []
    run = f"{int(time.time())}"
    try:
        with httpx.Client(base_url=api_base, headers=headers, timeout=10) as api:
            for number in range(samples):
                quota, webhook = sample(api, receiver, f"bench-{mode}-{run}-{number}")
                counted.append(quota)
                arrived.append(webhook)
                time.sleep(0.2)
    finally:
        usagemeter.shutdown()
        receiver.close()
    if receiver.refused:
        raise RuntimeError(f"{receiver.refused} deliveries failed signature verification")
    return counted, arrived


def env_token_args(env: dict[str, str]) -> list[str]:
    """``token``'s arguments: the data directory in embedded mode (its generated secret), else none."""
    return ["--data-dir", env["USAGEMETER_DATA_DIR"]] if "USAGEMETER_JWT_SECRET" not in env else []


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("USAGEMETER_")}
    return env | {"USAGEMETER_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}


@contextmanager
def embedded(work: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """``usagemeter up`` on a fresh data directory: (API base URL, environment, OTLP/gRPC endpoint)."""
    env = _clean_env() | {"USAGEMETER_DATA_DIR": str(work / "data")}
    grpc, http, api = free_port(), free_port(), free_port()
    command = ["-m", "usagemeter", "up", "--grpc-port", str(grpc), "--http-port", str(http)]
    up = _start([*command, "--api-port", str(api)], env, work / "up.log")
    try:
        wait_ready(f"http://127.0.0.1:{api}/api/v1/health")
        yield f"http://127.0.0.1:{api}", env, f"http://127.0.0.1:{grpc}"
    finally:
        _stop([up])


@contextmanager
def server_mode(work: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """A ClickHouse server, a collector and an API, each a process of its own."""
    server = ClickHouseServer(work / "server", free_port(), free_port())
    server.start()
    env = _clean_env() | {
        "USAGEMETER_CLICKHOUSE_URL": server.url(),
        "USAGEMETER_CLICKHOUSE_DATABASE": "usagemeter",
        "USAGEMETER_JWT_SECRET": SECRET,
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([sys.executable, "-m", "usagemeter", "migrate"], env=env, check=True, capture_output=True)
        grpc, http, api = free_port(), free_port(), free_port()
        collector = ["-m", "usagemeter", "collector", "--data-dir", str(work / "spool")]
        collector += ["--grpc-port", str(grpc), "--http-port", str(http)]
        processes.append(_start(collector, env, work / "collector.log"))
        processes.append(_start(["-m", "usagemeter", "api", "--api-port", str(api)], env, work / "api.log"))
        wait_ready(f"http://127.0.0.1:{api}/api/v1/health")
        wait_ready(f"http://127.0.0.1:{http}/health")
        yield f"http://127.0.0.1:{api}", env, f"http://127.0.0.1:{grpc}"
    finally:
        _stop(processes)
        server.stop()


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=60)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(results: dict[str, tuple[list[float], list[float]]]) -> tuple[str, list[tuple[str, str, str, str, str]]]:
    """The results section and its summary rows."""
    lines = [
        "## Webhooks",
        "",
        f"`bench/webhooks.py`, Python {platform.python_version()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}:"
        " each sample a fresh free-plan user using 8 of 10 document exports through usagemeter_instrumentation"
        " (OTLP/gRPC); the clock starts when `force_flush()` returns (the collector acknowledged the export) and"
        " stops when the signed `quota.threshold_reached` arrives at a receiver on loopback. Baseline, same samples:"
        " the quota endpoint counting the use (polled every 10 ms).",
        "",
        "| mode | what | samples | p50 s | p95 s | max s |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    for mode, (counted, arrived) in results.items():
        for what, values in (("webhook arrived", arrived), ("baseline: quota counts the use", counted)):
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            lines.append(f"| {mode} | {what} | {len(values)} | {p50:.2f} | {p95:.2f} | {max(values):.2f} |")
        p95, base = percentile(arrived, 0.95), percentile(counted, 0.95)
        verdict = "met" if p95 <= TARGET_P95_SECONDS else "missed"
        rows.append(
            (
                f"webhook leaves within 5 s of the crossing usage's acknowledgement, {mode} (p95)",
                f"≤ {TARGET_P95_SECONDS:.0f} s",
                f"{p95:.2f} s",
                f"{base:.2f} s to the quota counting it ({p95 / base:.2f} times)",
                verdict,
            )
        )
    lines += [
        "",
        "On the way, after the acknowledgement: the collector's spool (sealed and inserted at most"
        " `USAGEMETER_BATCH_MAX_DELAY_SECONDS`, 0.5 s, after its first record), the API's in-memory view"
        " (`USAGEMETER_QUOTA_LIVE_REFRESH_SECONDS`, 0.25 s), the leading replica's detection pass"
        " (`USAGEMETER_WEBHOOK_DETECT_SECONDS`, 0.5 s), the outbox insert, and the sender, woken by it.",
    ]
    return "\n".join(lines) + "\n", rows


def main() -> None:
    """Measure each mode and publish the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--modes", default="embedded,server")
    args = parser.parse_args()
    results: dict[str, tuple[list[float], list[float]]] = {}
    for mode in args.modes.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"usagemeter-bench-webhooks-{mode}-"))
        try:
            with (embedded if mode == "embedded" else server_mode)(work) as (api, env, grpc):
                results[mode] = measure(mode, api, env, args.samples, grpc)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    section, rows = report(results)
    print(section)
    publish("webhooks", section, rows)


if __name__ == "__main__":
    main()
