"""Cumulative memory benchmark: the collector's RSS while a sender streams millions of distinct cumulative series.

Runs ``usagemeter collector`` on a fresh embedded data directory with a series limit, sends
``--series`` distinct cumulative ``feature.usage`` series (one point each) over OTLP/HTTP protobuf
in requests of ``--points`` points, samples the collector's RSS throughout, and reports the peak
against the RSS after start (the same run's baseline) and against the configured bound. It then
sends later points of series admitted first, which must all still be converted. In the same
process it measures what one tracked series costs in memory, in the collector's table and in
the nested-tuple dictionary an unbounded converter keeps.

    .venv/bin/python bench/cumulative_memory.py [--series 2000000] [--points 25000] [--max-series 1000000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
from _common import free_port, wait_ready
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric, NumberDataPoint, Sum

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "cumulative_memory.md"
_USER_TEMPLATE = b"u000000000"
_MB = 1024 * 1024


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


class Requests:
    """Encodes requests of cumulative points, each of its own series (user id), quickly enough to keep up."""

    def __init__(self) -> None:
        self.start = (time.time_ns() // 10**9 - 3600) * 10**9
        self._request = ExportMetricsServiceRequest()
        resource = self._request.resource_metrics.add()
        resource.resource.attributes.append(_kv("service.name", "bench-cumulative"))
        scope = resource.scope_metrics.add()
        scope.scope.name = "bench"
        cumulative = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        scope.metrics.append(Metric(name="feature.usage", unit="1", sum=Sum(aggregation_temporality=cumulative)))
        self._sum = scope.metrics[0].sum
        self._sum.is_monotonic = True

    def encode(self, first: int, count: int, seconds: int, value: float) -> bytes:
        """``count`` points of series ``first``…, at ``seconds`` after the runs' start, each worth ``value``."""
        point = NumberDataPoint(start_time_unix_nano=self.start, time_unix_nano=self.start + seconds * 10**9)
        point.as_double = value
        point.attributes.extend([_kv("feature.key", "chat"), _kv("user.id", _USER_TEMPLATE.decode())])
        template = point.SerializeToString()
        at = template.index(_USER_TEMPLATE)
        head, tail = b"\x0a" + bytes([len(template)]) + template[:at], template[at + len(_USER_TEMPLATE) :]
        # Repeated fields concatenate: the Sum's data points as encoded bytes, parsed once.
        body = b"".join(head + b"u%09d" % number + tail for number in range(first, first + count))
        self._sum.Clear()
        self._sum.MergeFromString(body)
        self._sum.is_monotonic = True
        self._sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        return self._request.SerializeToString()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    """Samples a process's RSS every 0.1 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self.peak = 0.0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.peak = max(self.peak, _rss_mb(self._pid))
            self.samples += 1

    def mark(self) -> float:
        """The peak so far; sampling goes on with a peak of its own from here."""
        before, self.peak = self.peak, 0.0
        return before

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def _metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"usagemeter_collector_{name} "):
            return float(line.split()[1])
    raise KeyError(name)


def _post(client: httpx.Client, port: int, body: bytes) -> int:
    """Send one request (resending while refused as retryable); the points it had rejected."""
    while True:
        response = client.post(
            f"http://127.0.0.1:{port}/v1/metrics", content=body, headers={"Content-Type": "application/x-protobuf"}
        )
        if response.status_code == 200:
            return ExportMetricsServiceResponse.FromString(response.content).partial_success.rejected_data_points
        if response.status_code not in (429, 503):
            raise RuntimeError(f"collector answered {response.status_code}: {response.text}")
        time.sleep(0.2)


def measure_collector(series: int, points: int, max_series: int) -> dict[str, float]:
    """Stream ``series`` distinct series into a collector limited to ``max_series``; its RSS figures."""
    data_dir = Path(tempfile.mkdtemp(prefix="usagemeter-bench-cumulative-"))
    env = os.environ | {
        "USAGEMETER_SPOOL_DIR": str(data_dir / "spool"),
        "USAGEMETER_CUMULATIVE_MAX_SERIES": str(max_series),
    }
    subprocess.run([sys.executable, "-m", "usagemeter", "migrate", "--data-dir", str(data_dir)], env=env, check=True)
    http_port = free_port()
    args = ["collector", "--data-dir", str(data_dir), "--grpc-port", str(free_port()), "--http-port", str(http_port)]
    collector = subprocess.Popen([sys.executable, "-m", "usagemeter", *args], env=env, stderr=subprocess.DEVNULL)
    requests = Requests()
    try:
        wait_ready(f"http://127.0.0.1:{http_port}/metrics")
        time.sleep(3)  # the engine's start-up allocations settle
        baseline = _rss_mb(collector.pid)
        sampler = Sampler(collector.pid)
        sampler.start()
        rejected, at_limit, peak_admitting = 0, 0.0, 0.0
        started = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            for first in range(0, series, points):
                rejected += _post(client, http_port, requests.encode(first, min(points, series - first), 10, 1.0))
                if not at_limit and first + points >= max_series:
                    at_limit, peak_admitting = _rss_mb(collector.pid), sampler.mark()
            elapsed = time.perf_counter() - started
            known_rejected = _post(client, http_port, requests.encode(0, min(points, max_series), 20, 3.0))
        end = _rss_mb(collector.pid)
        peak_refusing = sampler.stop()
        return {
            "baseline_mb": baseline,
            "at_limit_mb": at_limit,
            "end_mb": end,
            "peak_mb": max(peak_admitting, peak_refusing),
            "peak_admitting_mb": peak_admitting,
            "peak_refusing_mb": peak_refusing,
            "samples": sampler.samples,
            "seconds": elapsed,
            "rejected": rejected,
            "known_rejected": known_rejected,
            "tracked": _metric(http_port, "cumulative_series"),
            "refused": _metric(http_port, "cumulative_series_refused"),
        }
    finally:
        collector.terminate()
        collector.wait(60)


def bytes_per_series(count: int = 200_000) -> tuple[float, float]:
    """Traced bytes per tracked series: the collector's table, and a dictionary of nested tuple keys."""
    from usagemeter_collector._spool.series import SeriesState, SeriesTable, series_digest

    resource = (("service.name", "bench-cumulative"),)
    keys = [
        ((resource, "bench", "", "feature.usage"), (("feature.key", "chat"), ("user.id", f"u{n:09d}")))
        for n in range(count)
    ]
    digests = [series_digest(key) for key in keys]
    state = SeriesState(1, 2, 3.0)
    gc.collect()
    tracemalloc.start()
    table = SeriesTable()
    for digest in digests:
        table.put(digest[:8] + digest[8:], state, 1.0)  # a key of its own, as a request's digest is
    compact = tracemalloc.get_traced_memory()[0] / count
    tracemalloc.stop()
    del table
    gc.collect()
    tracemalloc.start()
    # Strings of their own, as each request's decoded attributes are.
    nested = {
        (key[0], tuple((k.encode().decode(), v.encode().decode()) for k, v in key[1])): SeriesState(1, 2, 3.0 + n)
        for n, key in enumerate(keys)
    }
    tuples = tracemalloc.get_traced_memory()[0] / count
    tracemalloc.stop()
    del nested
    return compact, tuples


def report(args: argparse.Namespace, run: dict[str, float], compact: float, tuples: float) -> None:
    bound_mb = args.max_series * compact / _MB
    growth = run["peak_mb"] - run["baseline_mb"]
    known = min(args.points, args.max_series)
    text = f"""## Cumulative series memory

`.venv/bin/python bench/cumulative_memory.py --series {args.series} --points {args.points} \
--max-series {args.max_series}`: `usagemeter collector` on a fresh embedded data directory with
`USAGEMETER_CUMULATIVE_MAX_SERIES={args.max_series}`; {args.series:,} distinct cumulative `feature.usage` series, one
point each, sent over OTLP/HTTP protobuf in requests of {args.points:,} points, one request at a time; the collector's
RSS sampled every 0.1 s ({run["samples"]:.0f} samples) for {run["seconds"]:.0f} s.

| what | MB |
|---|---|
| RSS after start (baseline) | {run["baseline_mb"]:,.0f} |
| peak RSS while the first {args.max_series:,} series were admitted | {run["peak_admitting_mb"]:,.0f} |
| RSS once they were admitted | {run["at_limit_mb"]:,.0f} |
| peak RSS while {args.series - args.max_series:,} more series were refused | {run["peak_refusing_mb"]:,.0f} |
| RSS at the end | {run["end_mb"]:,.0f} |
| peak growth over the baseline | {growth:,.0f} |
| configured bound: {args.max_series:,} series of {compact:.0f} bytes | {bound_mb:,.0f} |

The collector tracked {run["tracked"]:,.0f} series and refused {run["refused"]:,.0f} points of new series
({run["rejected"]:,.0f} rejected through partial success); the last request, later points of {known:,}
series admitted first, had {run["known_rejected"]:.0f} points rejected: known series keep being converted.
Peak growth over the baseline: {growth / bound_mb:.0%} of the configured bound; besides the series table it holds
the requests in flight and what the embedded engine keeps after inserting the admitted points. Past the limit the
number of series no longer adds to the RSS: refused series are not kept.

Memory of one tracked series (tracemalloc, 200,000 series, same run): {compact:.0f} bytes in the collector's table
(16-byte digest → packed state), against {tuples:.0f} bytes for a dictionary keyed by the nested tuples of the series
identity with a named tuple per state ({tuples / compact:.1f} times as much).
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--series", type=int, default=2_000_000)
    parser.add_argument("--points", type=int, default=25_000)
    parser.add_argument("--max-series", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request under `usagemeter bench`
    run = measure_collector(args.series, args.points, args.max_series)
    compact, tuples = bytes_per_series()
    report(args, run, compact, tuples)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
