"""Hostile clients against ``usagemeter up``: resident memory under huge headers and slow heads, and
the per-request cost of the connection limits.

Run: .venv/bin/python bench/hostile.py [--huge-mib 64] [--huge 10] [--slow 500] [--seconds 4] [--rounds 5]
Writes its results section to docs/benchmarks/hostile.md.

Memory: ``usagemeter up`` (embedded engine, no demo, default limits) in its own process; its idle
RSS is the baseline. Each wave starts every client at once in threads of this process: ``--huge``
clients that for 3 s send request after request whose ``Authorization`` header is ``--huge-mib``
MiB, on the API and then on OTLP/HTTP; then ``--slow`` slowloris connections on each port (a
request head that gains one header line every 0.25 s). RSS is sampled every 50 ms during a wave and
read 2 s after it; meanwhile a normal client asks ``GET /api/v1/health`` and posts an OTLP export.

Fast path: a bare Starlette app answering ``ok`` under uvicorn (uvloop, httptools) in its own
process, once with uvicorn's own protocol and once with the limited one, in alternating rounds; a
closed-loop client on 32 keep-alive connections (pre-encoded GETs) counts answers, and the server's
CPU time per answer is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, wait_ready
from _load import _response

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks" / "hostile.md"
MIB = 1024 * 1024
CONNECTIONS = 32
HUGE_WAVE_SECONDS = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--huge-mib", type=int, default=64)
    parser.add_argument("--huge", type=int, default=10)
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one fast-path round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", choices=["plain", "limited"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_bare(args.serve, args.port)
        return
    memory = _memory_waves(args)
    fast = _fast_path(args.seconds, args.rounds)
    _write(args, memory, fast)


# --- memory under attack ---------------------------------------------------------------------------


def _memory_waves(args: argparse.Namespace) -> dict[str, Any]:
    from tests.serving.hostile import huge_header, rss_bytes, slowloris

    data = Path(tempfile.mkdtemp(prefix="usagemeter-hostile-"))
    ports = {"grpc": free_port(), "http": free_port(), "api": free_port()}
    command = [sys.executable, "-m", "usagemeter", "up", "--data-dir", str(data)]
    command += ["--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]), "--api-port", str(ports["api"])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("USAGEMETER_")}
    up = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    huge = args.huge_mib * MIB
    waves = [
        (f"{args.huge} clients sending {args.huge_mib} MiB headers, API", [_repeat(huge_header, ports["api"], huge)]),
        (
            f"{args.huge} clients sending {args.huge_mib} MiB headers, OTLP/HTTP",
            [_repeat(huge_header, ports["http"], huge)],
        ),
        (f"{args.slow} slowloris on each port", [partial(slowloris, p) for p in (ports["api"], ports["http"])]),
    ]
    counts = [args.huge, args.huge, args.slow]
    try:
        wait_ready(f"http://127.0.0.1:{ports['api']}/api/v1/health")
        time.sleep(3)  # let the engine settle before the baseline
        idle = rss_bytes(up.pid)
        results = [
            _wave(up.pid, ports, name, calls * count) for (name, calls), count in zip(waves, counts, strict=True)
        ]
        return {"idle": idle, "waves": results}
    finally:
        up.terminate()
        up.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def _repeat(client: Callable[..., Any], *arguments: Any) -> Callable[[], Any]:
    """A client that runs ``client(*arguments)`` again and again for the huge wave's length; its last outcome."""

    def run() -> Any:
        deadline = time.monotonic() + HUGE_WAVE_SECONDS
        while True:
            outcome = client(*arguments)
            if time.monotonic() >= deadline:
                return outcome

    return run


def _wave(pid: int, ports: dict[str, int], name: str, calls: list[Callable[[], Any]]) -> dict[str, Any]:
    from tests.serving.hostile import PeakRss, Repeating, in_threads, rss_bytes

    normal = _NormalClient(ports)
    started = time.monotonic()
    with PeakRss(pid) as peak, Repeating(0.2, normal, join_seconds=30):
        outcomes = in_threads(calls)()
    elapsed = time.monotonic() - started
    time.sleep(2)
    result = {
        "name": name,
        "peak": peak.peak,
        "after": rss_bytes(pid),
        "closed": sum(o.closed_by_server for o in outcomes),
        "clients": len(outcomes),
        "statuses": sorted({str(o.status) for o in outcomes}),
        "seconds": elapsed,
        "normal": (normal.ok, normal.total),
    }
    print(result, flush=True)
    return result


class _NormalClient:
    """A well-behaved client asking for health and posting an empty OTLP export, one round per call."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ok, self.total = 0, 0
        self._calls = (
            partial(httpx.get, f"http://127.0.0.1:{ports['api']}/api/v1/health"),
            partial(
                httpx.post,
                f"http://127.0.0.1:{ports['http']}/v1/metrics",
                content=b"",
                headers={"Content-Type": "application/x-protobuf"},
            ),
        )

    def __call__(self) -> None:
        for call in self._calls:
            self.total += 1
            with contextlib.suppress(httpx.HTTPError):
                self.ok += call(timeout=10).status_code == 200


# --- fast path -------------------------------------------------------------------------------------


def _serve_bare(kind: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from usagemeter._limits import ConnectionLimits, server_options

    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/ok", ok)])
    options: dict[str, Any] = {"http": "httptools"}
    if kind == "limited":
        options = server_options(ConnectionLimits(16 * 1024, 10.0, 10.0, 1000, 5))
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", log_level="warning", access_log=False, **options)


def _fast_path(seconds: float, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per kind, each round's (answers per second, server CPU microseconds per answer)."""
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "limited": []}
    for _ in range(rounds):
        for kind in results:
            port = free_port()
            server = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
            try:
                wait_ready(f"http://127.0.0.1:{port}/ok")
                cpu_before = _cpu_seconds(server.pid)
                rate, answered = asyncio.run(_closed_loop(port, seconds))
                cpu = _cpu_seconds(server.pid) - cpu_before
            finally:
                server.terminate()
                server.wait(30)
            results[kind].append((rate, cpu / answered * 1e6))
            print(kind, f"{rate:,.0f} req/s, {results[kind][-1][1]:.1f} CPU µs per request", flush=True)
    return results


def _cpu_seconds(pid: int) -> float:
    # /proc/PID/stat: utime and stime, in clock ticks, are fields 14 and 15 (after the command name).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _closed_loop(port: int, seconds: float) -> tuple[float, int]:
    request = f"GET /ok HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)]
    answered = 0
    deadline = time.perf_counter() + seconds

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while time.perf_counter() < deadline:
            writer.write(request)
            status, _ = await _response(reader)
            answered += status == 200

    started = time.perf_counter()
    await asyncio.gather(*(one(r, w) for r, w in connections))
    elapsed = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
    return answered / elapsed, answered


# --- report ----------------------------------------------------------------------------------------


def _write(args: argparse.Namespace, memory: dict[str, Any], fast: dict[str, list[tuple[float, float]]]) -> None:
    idle = memory["idle"]
    rows = [
        f"| {w['name']} | {_mb(w['peak'])} (+{_mb(w['peak'] - idle)}) | {_mb(w['after'])} (+{_mb(w['after'] - idle)})"
        f" | {w['closed']}/{w['clients']} ({', '.join(w['statuses'])}) | {w['seconds']:.1f} | {w['normal'][0]}/"
        f"{w['normal'][1]} |"
        for w in memory["waves"]
    ]
    rate = {kind: _median([r for r, _ in rounds]) for kind, rounds in fast.items()}
    cpu = {kind: _median([c for _, c in rounds]) for kind, rounds in fast.items()}
    pairs = zip(fast["limited"], fast["plain"], strict=True)
    rounds = "; ".join(f"{x:.1f} µs ({a:,.0f} req/s) against {y:.1f} µs ({b:,.0f} req/s)" for (a, x), (b, y) in pairs)
    flags = f"--huge-mib {args.huge_mib} --huge {args.huge} --slow {args.slow} --seconds {args.seconds:g}"
    columns = "closed by the server (answers) | wave seconds | normal requests answered 200"
    text = f"""## Hostile clients

`.venv/bin/python bench/hostile.py {flags} --rounds {args.rounds}`, Python {platform.python_version()}:
`usagemeter up` (embedded engine, no demo, default limits: 16 KiB of request head, 10 s for a head, 1,000
connections per server) in its own process; every client of a wave starts at once, from threads of the
bench process, on 127.0.0.1. Baseline: the process's idle RSS in the same run, **{_mb(idle)}**. During
each wave a normal client asks `GET /api/v1/health` and posts an OTLP/HTTP export every 0.2 s.

| wave | peak RSS during (over idle) | RSS 2 s after (over idle) | {columns} |
|---|---|---|---|---|---|
{chr(10).join(rows)}

A huge-header client sends request after request for {HUGE_WAVE_SECONDS:g} s; the answers column shows its last
one. The server answers 431 once a head passes 16 KiB and then drops at most 1 MiB more before closing, so
a client still sending sees its connection reset ("None"). A slowloris connection is answered 408 when
its head is not complete 10 s after its first byte (the deadline sweep runs every second).

Fast path: a bare Starlette app under uvicorn (uvloop, httptools), {CONNECTIONS} keep-alive connections in a
closed loop, {args.rounds} alternating rounds of {args.seconds:g} s; the server's CPU time (user + system) per
answered request is the steadier figure on a shared machine. Medians: limited protocol
**{cpu["limited"]:.1f} CPU µs per request** ({rate["limited"]:,.0f} req/s), uvicorn's own
**{cpu["plain"]:.1f} CPU µs** ({rate["plain"]:,.0f} req/s): the limits cost
**{cpu["limited"] / cpu["plain"] - 1:+.1%}** CPU per request.
Rounds (limited against uvicorn's own): {rounds}.
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _mb(value: int) -> str:
    return f"{value / MIB:,.0f} MiB"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
