"""A collector process SIGKILLed under load and restarted loses no acknowledged usage and counts nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import T0, usage_point, usage_request, wait_for
from tests.collector.small_disk import Filler, small_disk
from tests.conftest import free_port
from usagemeter_clickhouse import tables

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_REQUESTS = 300
_USERS = 20

_QUERY_TOTALS = f"""
import json, sys
from usagemeter_clickhouse import connect, embedded_url
client = connect(embedded_url(sys.argv[1]), "usagemeter")
rows = client.query(
    "SELECT UserId, toFloat64(sum(Quantity)) FROM {tables.USAGE_MINUTE} WHERE DimensionKey = '' GROUP BY UserId"
).result_rows
print(json.dumps(dict(rows)))
"""


def _usagemeter(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "usagemeter", *args], env=env, stderr=subprocess.DEVNULL)


class _Collector:
    """``usagemeter collector`` in a process of its own on fixed ports."""

    def __init__(self, data_dir: Path, spool_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.http_port = free_port()
        self.env = os.environ | {
            "USAGEMETER_SPOOL_DIR": str(spool_dir or data_dir / "spool"),
            "USAGEMETER_BATCH_MAX_DELAY_SECONDS": "0.05",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ("--data-dir", str(self.data_dir), "--grpc-port", str(free_port()), "--http-port", str(self.http_port))
        self.process = _usagemeter("collector", *args, env=self.env)
        assert wait_for(self._ready, 60), "collector did not start"

    def _ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        """One of the collector's counters or gauges from its GET /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10).text
        line = next(line for line in text.splitlines() if line.startswith(f"usagemeter_collector_{name} "))
        return float(line.split()[1])

    def stop(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(60)


def _request(number: int) -> bytes:
    """Delta uses for one user, and the running total of a cumulative sender."""
    delta = usage_request([usage_point(f"user-{number % _USERS}", 1 + number % 3, T0 + number)])
    cumulative = usage_request(
        [usage_point("steady", number + 1, T0 + 1 + number, start_ns=T0)], temporality=_CUMULATIVE
    )
    delta.resource_metrics.extend(cumulative.resource_metrics)
    return delta.SerializeToString()


def _send_all(collector: _Collector, acked: list[int], done: threading.Event, refused: list[int] | None = None) -> None:
    """Send every request in order, resending each until it is acknowledged, as an OTLP exporter retries.

    Each retryable refusal (503) is noted in ``refused``.
    """
    with httpx.Client(timeout=10) as client:
        for number in range(_REQUESTS):
            body = _request(number)
            while True:
                try:
                    url = f"http://127.0.0.1:{collector.http_port}/v1/metrics"
                    response = client.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
                    if response.status_code == 200:
                        acked.append(number)
                        break
                    if refused is not None and response.status_code == 503:
                        refused.append(number)
                except httpx.HTTPError:
                    pass
                done.wait(0.05)
    done.set()


def test_sigkill_under_load_then_restart_keeps_exact_totals(data_dir: Path) -> None:
    collector = _Collector(data_dir)
    assert _usagemeter("migrate", "--data-dir", str(data_dir), env=collector.env).wait(120) == 0
    collector.start()
    acked: list[int] = []
    done = threading.Event()
    sender = threading.Thread(target=_send_all, args=(collector, acked, done), daemon=True)
    sender.start()
    for kill_after in (60, 160):
        assert wait_for(lambda: len(acked) >= kill_after, 60)  # noqa: B023
        collector.stop(signal.SIGKILL)
        collector.start()
    assert done.wait(120)
    # What the kills cut short at the end of a segment was never acknowledged: no loss to report.
    assert collector.metric("spool_records_damaged") == 0
    collector.stop(signal.SIGTERM)
    assert _totals(data_dir) == _expected_totals()


def _expected_totals() -> dict[str, float]:
    expected: dict[str, float] = {"steady": float(_REQUESTS)}
    for number in range(_REQUESTS):
        user = f"user-{number % _USERS}"
        expected[user] = expected.get(user, 0.0) + 1 + number % 3
    return expected


def _totals(data_dir: Path) -> dict[str, float]:
    query = subprocess.run(
        [sys.executable, "-c", _QUERY_TOTALS, str(data_dir)], capture_output=True, text=True, timeout=120, check=True
    )
    return dict(json.loads(query.stdout))


def test_full_disk_then_sigkill_and_restart_keeps_exact_totals(data_dir: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path / "small-disk") as disk:
        collector = _Collector(data_dir, spool_dir=disk / "spool")
        assert _usagemeter("migrate", "--data-dir", str(data_dir), env=collector.env).wait(120) == 0
        collector.start()
        acked: list[int] = []
        refused: list[int] = []
        done = threading.Event()
        sender = threading.Thread(target=_send_all, args=(collector, acked, done, refused), daemon=True)
        sender.start()
        assert wait_for(lambda: len(acked) >= 60, 60)
        filler = Filler(disk / "filler")
        # Topped up while the writer frees inserted segments, until exports are being refused.
        assert wait_for(lambda: filler.fill() and len(refused) >= 5, 60)
        assert collector.metric("spool_write_errors") > 0
        filler.remove()
        resumed = len(acked)
        assert wait_for(lambda: len(acked) >= resumed + 60, 60)
        collector.stop(signal.SIGKILL)
        collector.start()
        assert done.wait(120)
        collector.stop(signal.SIGTERM)
    assert _totals(data_dir) == _expected_totals()
