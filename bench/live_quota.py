"""The in-memory usage view on the quota check's path: p99 at 1,000 req/s against a bare endpoint, same process.

Fills a fresh embedded database like bench/live_memory.py (``--entries`` entries, five slices a
user), then serves, in one process on the product's server stack (uvicorn behind the API's
connection limits), a bare endpoint answering a constant and a view endpoint that does what the
quota check asks of the view: the window of a limit at the current moment, and ``used`` for one
random (user, slice) entry out of the million, answered as JSON. Both get the same open-loop load
(the lean client of bench/_load.py, its own process) in alternating rounds; the report gives
their percentiles and the ratio of the p99s. Routes, plans and tokens are not in the picture:
this isolates the view's share of the check.

    .venv/bin/python bench/live_quota.py [--entries 1000000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _common import free_port, publish, wait_ready
from _load import open_loop, percentile

ROUNDS = 3
RATE = 1000
BARE_PATH = "/bare"


def serve(url: str, port: int, entries: int) -> None:
    """Load the view, then serve the bare and the view endpoints until terminated."""
    from fastapi import FastAPI
    from live_memory import DATABASE, ROLLING, SLICES
    from pydantic import SecretStr

    from usagemeter._serving import api_server
    from usagemeter_api import ApiSettings
    from usagemeter_api.domain.periods import limit_window
    from usagemeter_api.domain.usage.live import LiveUsage
    from usagemeter_api.domain.usage.slices import Slice
    from usagemeter_api.schemas.plans import LimitWindow
    from usagemeter_clickhouse import connect

    live = LiveUsage(lambda: connect(url, DATABASE), rolling_minutes=lambda: ROLLING)
    live.start()
    while not live.ready:
        time.sleep(0.1)
    parts = [Slice(*part) for part in SLICES]
    windows = [LimitWindow("month"), LimitWindow("rolling", ROLLING[0]), LimitWindow("lifetime")]
    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare() -> dict[str, object]:
        return {"allowed": True, "remaining": 8, "used": 42}

    unanswered = [0, 0]

    @app.get("/check")
    async def check(user: str, part: int, window: int) -> dict[str, object]:
        used = live.used(user, [parts[part]], limit_window(windows[window], datetime.now(UTC)))
        unanswered[1] += 1
        if used is None:  # the quota code would read ClickHouse: counted, not timed here
            unanswered[0] += 1
            return {"allowed": True, "fallback": True}
        return {"allowed": used[0] < 10**12, "remaining": 10**12 - used[0], "used": used[0]}

    @app.get("/unanswered")
    async def unanswered_share() -> dict[str, int]:
        return {"unanswered": unanswered[0], "checks": unanswered[1]}

    api_server(app, ApiSettings(jwt_secret=SecretStr("x" * 32), api_port=port), "warning").run()


def check_paths(count: int, entries: int, seed: int) -> list[str]:
    """View reads of random entries and windows (month, 5 h rolling, lifetime)."""
    rng = random.Random(seed)
    paths = []
    for _ in range(count):
        number = rng.randrange(entries)
        paths.append(f"/check?user=user-{number // 5}&part={number % 5}&window={rng.randrange(3)}")
    return paths


def run(entries: int, seconds: float) -> str:
    """Prepare, serve, measure; return the markdown results section."""
    with tempfile.TemporaryDirectory(prefix="usagemeter-live-quota-") as folder:
        url = f"chdb://{Path(folder).resolve()}/clickhouse"
        prepare = [sys.executable, str(Path(__file__).with_name("live_memory.py")), "--measure", "prepare"]
        subprocess.run([*prepare, "--url", url, "--entries", str(entries)], check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port), "--entries", "0"])
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + BARE_PATH, deadline_seconds=600)
            open_loop(base, check_paths(500, entries, 1), 100, 2, "-")  # warm-up
            open_loop(base, [BARE_PATH], 100, 2, "-")
            results: dict[str, list[float]] = {"bare": [], "view": []}
            load = os.getloadavg()[0]
            for round_number in range(ROUNDS):
                for name in ("bare", "view"):
                    paths = [BARE_PATH] if name == "bare" else check_paths(int(RATE * seconds), entries, round_number)
                    latencies, failures = open_loop(base, paths, RATE, seconds, "-")
                    if failures:
                        raise RuntimeError(f"{name} requests failed: {failures}")
                    results[name] += latencies
            counts = httpx.get(base + "/unanswered").json() | {"load": load, "load_after": os.getloadavg()[0]}
        finally:
            server.terminate()
            server.wait(timeout=30)
    return _report(entries, seconds, results, counts)


def _report(entries: int, seconds: float, results: dict[str, list[float]], counts: dict[str, float]) -> str:
    lines = [
        "## In-memory usage view on the quota check's path",
        "",
        f"{entries:,} entries loaded (bench/live_memory.py's shape), one process serving a bare endpoint and an",
        "endpoint doing the view's part of a quota check (the limit's window at the current moment, `used` for one",
        "random entry and window: month, 5 h rolling or lifetime), on the product's server stack; open loop at",
        f"{RATE:,} req/s, {ROUNDS} alternating rounds of {seconds:g} s each (bench/live_quota.py).",
        "",
        "| endpoint | requests | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name, latencies in results.items():
        lines.append(
            f"| {name} | {len(latencies):,} | {percentile(latencies, 0.5):.2f} | {percentile(latencies, 0.99):.2f}"
            f" | {max(latencies):.1f} |"
        )
    ratio = percentile(results["view"], 0.99) / percentile(results["bare"], 0.99)
    lines += [
        "",
        f"p99 of the view endpoint against the bare one, same run: {ratio:.2f}x. The view left"
        f" {counts['unanswered']:,.0f} of {counts['checks']:,.0f} reads unanswered (a rolling window in the moments"
        " after its minute turned, before the view caught up; the quota code reads ClickHouse for those). Load average"
        f" {counts['load']:.1f} before the rounds and {counts['load_after']:.1f} after (2 cores, shared).",
        "",
    ]
    publish(
        "live_quota",
        "\n".join(lines),
        [
            (
                "in-memory usage view's part of the quota check, p99 at 1,000 req/s",
                "within 2x of a bare endpoint",
                f"{percentile(results['view'], 0.99):.2f} ms",
                f"bare, same process and run: {percentile(results['bare'], 0.99):.2f} ms",
                f"{'met' if ratio <= 2 else 'not met'} ({ratio:.2f}x)",
            )
        ],
    )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark, or (``--serve``) be its server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--serve")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.entries)
        return
    print(run(args.entries, args.seconds))


if __name__ == "__main__":
    main()
