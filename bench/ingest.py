"""Ingest benchmark: OTLP feature.usage points per second that reach ClickHouse through the collector.

Runs ``usagemeter collector`` on a fresh data directory, replays pre-encoded
ExportMetricsServiceRequests (delta ``feature.usage`` sums, many users) from a
separate process over OTLP/gRPC on 127.0.0.1 at full speed, and counts the
points committed to ClickHouse (the collector's ``rows_inserted`` counter).
In the same run it measures the ceiling: the same rows inserted straight into
ClickHouse (pre-built columns, integer timestamps) with no collector in front.

    .venv/bin/python bench/ingest.py [--requests 60] [--points 5000] [--senders 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric, NumberDataPoint, Sum

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "ingest.md"
USERS = 10_000


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_requests(count: int, points: int) -> list[bytes]:
    """Pre-encoded requests of ``points`` delta usage points each, spread over many users."""
    now = (time.time_ns() // 10**9 - 60) * 10**9
    requests = []
    for number in range(count):
        request = ExportMetricsServiceRequest()
        resource = request.resource_metrics.add()
        resource.resource.attributes.append(_kv("service.name", "bench"))
        scope = resource.scope_metrics.add()
        scope.scope.name = "bench"
        metric = Metric(name="feature.usage", unit="1", sum=Sum(is_monotonic=True))
        metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        for i in range(points):
            user = f"user-{(number * points + i) % USERS}"
            point = NumberDataPoint(start_time_unix_nano=now - 10**9, time_unix_nano=now + number, as_int=1)
            point.attributes.extend([_kv("user.id", user), _kv("feature.key", f"feature-{i % 5}")])
            metric.sum.data_points.append(point)
        scope.metrics.append(metric)
        requests.append(request.SerializeToString())
    return requests


def load(port: int, count: int, points: int, senders: int) -> None:
    """The load process: send every request once (resending on refusal), ``senders`` at a time."""
    requests = build_requests(count, points)
    print("ready", flush=True)
    sys.stdin.readline()
    queue = list(range(count))
    lock = threading.Lock()

    def sender() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
            export = ch.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            while True:
                with lock:
                    if not queue:
                        return
                    number = queue.pop()
                while True:
                    try:
                        export(requests[number], timeout=60)
                        break
                    except grpc.RpcError:
                        time.sleep(0.2)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("sent", flush=True)


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f"usagemeter_collector_{name} "):
            return float(line.split()[1])
    raise KeyError(name)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            _metric(port, "rows_inserted")
            return
        except (httpx.HTTPError, KeyError):
            time.sleep(0.1)
    raise TimeoutError("collector did not start")


def measure_collector(count: int, points: int, senders: int) -> dict[str, float]:
    """Points/s from first send until every point is committed, and the collector's peak RSS."""
    from tests.conftest import free_port

    data_dir = Path(tempfile.mkdtemp(prefix="usagemeter-bench-"))
    env = os.environ | {"USAGEMETER_SPOOL_DIR": str(data_dir / "spool")}
    subprocess.run([sys.executable, "-m", "usagemeter", "migrate", "--data-dir", str(data_dir)], env=env, check=True)
    grpc_port, http_port = free_port(), free_port()
    args = ["collector", "--data-dir", str(data_dir), "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    collector = subprocess.Popen([sys.executable, "-m", "usagemeter", *args], env=env, stderr=subprocess.DEVNULL)
    loader = subprocess.Popen(
        [sys.executable, __file__, "--load", str(grpc_port), *_sizes(count, points), "--senders", str(senders)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(http_port, time.monotonic() + 120)
        assert loader.stdout is not None and loader.stdin is not None
        assert loader.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        loader.stdin.write("go\n")
        loader.stdin.flush()
        total = count * points
        while _metric(http_port, "rows_inserted") < total:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        loader.wait(60)
        return {"points": total, "seconds": elapsed, "rate": total / elapsed, "rss_mb": _peak_rss_mb(collector.pid)}
    finally:
        loader.kill()
        collector.terminate()
        collector.wait(60)


def _sizes(count: int, points: int) -> list[str]:
    return ["--requests", str(count), "--points", str(points)]


def measure_ceiling(count: int, points: int) -> dict[str, float]:
    """The same rows inserted straight into a fresh embedded ClickHouse, 100k rows per insert."""
    from usagemeter_clickhouse import connect, embedded_url, migrate
    from usagemeter_collector import CumulativeToDelta, decode_metrics
    from usagemeter_collector._schema import COLUMNS, METRICS_SUM

    rows: list[Any] = []
    for body in build_requests(count, points):
        rows.extend(decode_metrics(ExportMetricsServiceRequest.FromString(body), CumulativeToDelta()).rows[METRICS_SUM])
    columns = [list(column) for column in zip(*rows, strict=True)]
    client = connect(embedded_url(tempfile.mkdtemp(prefix="usagemeter-ceiling-")), "usagemeter", create_database=True)
    migrate(client)
    started = time.perf_counter()
    for offset in range(0, len(rows), 100_000):
        chunk = [column[offset : offset + 100_000] for column in columns]
        client.insert(METRICS_SUM, chunk, column_names=COLUMNS[METRICS_SUM], column_oriented=True)
    elapsed = time.perf_counter() - started
    return {"points": len(rows), "seconds": elapsed, "rate": len(rows) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ceiling", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load, args.requests, args.points, args.senders)
        return
    if args.ceiling:
        print(json.dumps(measure_ceiling(args.requests, args.points)))
        return
    through = measure_collector(args.requests, args.points, args.senders)
    # The ceiling runs in a process of its own: one embedded engine per process.
    ceiling_run = subprocess.run(
        [sys.executable, __file__, "--ceiling", "--requests", str(args.requests), "--points", str(args.points)],
        capture_output=True,
        text=True,
        check=True,
    )
    ceiling = json.loads(ceiling_run.stdout.strip().splitlines()[-1])
    report(args, through, ceiling)


def report(args: argparse.Namespace, through: dict[str, float], ceiling: dict[str, float]) -> None:
    ratio = through["rate"] / ceiling["rate"]
    row = "| {} | {points:,.0f} | {seconds:.2f} | {rate:,.0f} |"
    text = f"""## Ingest (collector → ClickHouse)

`.venv/bin/python bench/ingest.py --requests {args.requests} --points {args.points} --senders {args.senders}`:
{args.requests} pre-encoded OTLP ExportMetricsServiceRequests of {args.points} delta `feature.usage` points
({USERS} users) sent over OTLP/gRPC on 127.0.0.1 by {args.senders} senders in a separate process, into
`usagemeter collector` on a fresh embedded data directory. A point counts once it is committed to ClickHouse
(acknowledged after fsync to the spool, then inserted).

| path | points | seconds | points/s |
|---|---|---|---|
{row.format("collector end to end (spool + insert)", **through)}
{row.format("ceiling: same rows inserted directly, no collector", **ceiling)}

Ratio to ceiling: **{ratio:.0%}**.
Collector peak RSS (VmHWM, embedded engine included): **{through["rss_mb"]:,.0f} MB**.
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
