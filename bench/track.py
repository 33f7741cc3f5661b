"""Cost of usagemeter's track_feature_use against a bare OpenTelemetry SDK Counter.add, in one run.

Run: .venv/bin/python bench/track.py [--samples N]
Writes its results section to docs/benchmarks/track.md. The OTLP receiver runs in a separate
process on 127.0.0.1 and counts the feature.usage points it gets, to check exactness.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

import usagemeter_instrumentation as usagemeter

BATCH = 100
USERS_PER_INTERVAL = 100_000
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "track.md"

_RECEIVER = """
import json, sys, threading
from concurrent import futures
from fractions import Fraction
import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

micros = {}  # exact totals per feature key, in micro-units
series = 0
lock = threading.Lock()

class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        global series
        with lock:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "feature.usage":
                            for p in m.sum.data_points:
                                feature = next(a.value.string_value for a in p.attributes if a.key == "feature.key")
                                whole = p.WhichOneof("value") == "as_int"
                                value = p.as_int * 10**6 if whole else round(Fraction(p.as_double) * 10**6)
                                micros[feature] = micros.get(feature, 0) + value
                                series += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 1 << 28)])
metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.readline()
with lock:
    print(json.dumps({"micros": micros, "series": series}), flush=True)
"""


def per_call_micros(call: Callable[[], None], samples: int) -> list[float]:
    """Mean cost per call, in µs, of ``samples`` batches of ``BATCH`` calls."""
    results = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            call()
        results.append((time.perf_counter_ns() - start) / BATCH / 1000)
    return results


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def measure_cost(samples: int) -> dict[str, tuple[float, float]]:
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    bare = MeterProvider(metric_readers=[reader]).get_meter("bench").create_counter("bare.usage")
    attributes = {"user.id": "user-42", "feature.key": "ai_content_generation"}
    calls: dict[str, Callable[[], None]] = {
        "track_feature_use": lambda: usagemeter.track_feature_use("ai_content_generation", "user-42"),
        "Counter.add (bare SDK, 2 attributes)": lambda: bare.add(1, attributes),
        "track_feature_use with metadata, no span": lambda: usagemeter.track_feature_use(
            "ai_content_generation", "user-42", model="gpt-4o-mini", prompt_tokens=120
        ),
        "track_feature_use with an int amount": lambda: usagemeter.track_feature_use("ai_tokens", "user-42", 1200),
        "track_feature_use with a float amount": lambda: usagemeter.track_feature_use("gpu_seconds", "user-42", 0.25),
    }
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(10):  # interleaved rounds share the machine's noise
        for name, call in calls.items():
            timings[name].extend(per_call_micros(call, samples // 10))
    return {name: summary(values) for name, values in timings.items()}


def measure_memory(port: int) -> tuple[float, float, float]:
    """Peak traced MiB while 100,000 users are counted, and while they are exported; export seconds."""
    usagemeter.force_flush(30_000)
    gc.collect()
    users = [f"user-{index}" for index in range(USERS_PER_INTERVAL)]
    for user in users:  # timed without tracemalloc, which slows allocation-heavy code many times over
        usagemeter.track_feature_use("chat_messages", user)
    start = time.perf_counter()
    usagemeter.force_flush(60_000)
    export_seconds = time.perf_counter() - start
    tracemalloc.start()
    for user in users:
        usagemeter.track_feature_use("chat_messages", user)
    counted_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.reset_peak()
    usagemeter.force_flush(60_000)
    export_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return counted_peak, export_peak, export_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000, help="batches of 100 calls per measured call")
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(receiver.stdout.readline())  # type: ignore[union-attr]
        usagemeter.configure("bench", f"http://127.0.0.1:{port}", export_interval_millis=600_000)
        costs = measure_cost(args.samples)
        memory = measure_memory(port)
        usagemeter.shutdown()
        receiver.stdin.write("\n")  # type: ignore[union-attr]
        receiver.stdin.flush()  # type: ignore[union-attr]
        answer = json.loads(receiver.stdout.readline())  # type: ignore[union-attr]
    finally:
        receiver.kill()
    calls = args.samples * BATCH  # per measured call; the bare Counter.add calls are not metered
    expected = {
        "ai_content_generation": 2 * calls * 10**6,
        "chat_messages": 2 * USERS_PER_INTERVAL * 10**6,
        "ai_tokens": 1200 * calls * 10**6,
        "gpu_seconds": 250_000 * calls,
    }
    report(costs, memory, answer["micros"] == expected, answer["series"], 5 * calls + 2 * USERS_PER_INTERVAL)


def report(
    costs: dict[str, tuple[float, float]], memory: tuple[float, float, float], exact: bool, series: int, calls: int
) -> None:
    baseline = costs["Counter.add (bare SDK, 2 attributes)"][0]
    lines = [
        "## track_feature_use",
        "",
        f"`bench/track.py`, Python {sys.version.split()[0]}; per-call cost = mean of batches of {BATCH} calls.",
        "",
        "| call | median µs | p99 µs | median vs bare Counter.add |",
        "|---|---|---|---|",
    ]
    for name, (median, p99) in costs.items():
        lines.append(f"| {name} | {median:.3f} | {p99:.3f} | {median / baseline:.0%} |")
    counted, exported, seconds = memory
    lines += [
        "",
        f"Memory, {USERS_PER_INTERVAL:,} distinct users in one interval (tracemalloc peaks, string ids "
        f"included): {counted:.1f} MiB while counting, {exported:.1f} MiB during the export. Exporting "
        f"them took {seconds:.2f} s on the exporting thread (untraced run).",
        "",
        f"Exactness: the totals the receiver (separate process) got in {series:,} points for {calls:,} metered "
        f"calls (uses, int amounts of 1200, float amounts of 0.25) {'are' if exact else 'are NOT'} the exact sums.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
