"""Latency and throughput of the quota check and the dashboard against a bare FastAPI endpoint, in one run.

Run: .venv/bin/python bench/api.py [--load-seconds 90] [--duration 15]
Writes its results section to docs/benchmarks/api.md.

Layout: a loader process fills a fresh embedded database (100,000 users x 10 features, each feature's
total and its gpt-4o slice: two million entries of the in-memory view; a grant for one user in a
hundred); every feature is limited per rolling 5 hours, per rolling 7 days and per month for gpt-4o,
and each check asks for `dimension=gpt-4o`, so it evaluates three windows, a dimension and grants. The API
then runs in its own process as `usagemeter api` serves it (uvicorn with uvloop and httptools, behind
the product's per-connection limits), a bare FastAPI app (constant JSON) in another served the same
way, and the load comes from separate processes: a lean open-loop client (pre-encoded HTTP/1.1
requests on raw keep-alive connections, one request in flight per connection) for latency at a
fixed offered rate, Debian's `wrk` for maximum throughput.
All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _common import free_port, wait_ready
from _load import CONNECTIONS, closed_loop, open_loop, percentile

USERS = 100_000
FEATURES = 10
DATABASE = "usagemeter"
SECRET = "bench-api-secret-0123456789abcdef-0123456789"
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "api.md"
QUOTA_PATH = "/api/v1/quotas/feature_{feature}/check?user_id=user-{user}&dimension=gpt-4o"
#: One user in this many has a grant of each feature.
_GRANT_EVERY = 100
DASHBOARD_PATH = "/api/v1/analytics/dashboard-metrics?user_id=user-{user}"
BARE_PATH = "/bare"
#: The dataset's floor whatever the load budget (about 50 M usage points in all), so runs compare.
_MIN_DAYS = 43
_MIN_RAW_POINTS = 2_000_000
#: Dashboard requests per second: a refresh of its shared part (every 2 s) falls on about 1 in 40.
_DASHBOARD_RPS = 20
#: Alternating open-loop rounds per endpoint at 1,000 rps for the latency comparison.
_LATENCY_ROUNDS = 3
#: Alternating wrk runs per endpoint for the throughput comparison.
_THROUGHPUT_ROUNDS = 3
#: Frames the profile summary reports (request handling, serialisation, the view and the engine).
_PROFILED = (
    "check_quota",
    "solve_dependencies",
    "serialize_response",
    "current_principal",
    "plan_catalog",
    "LiveUsage.used_in",
    "query_model",
    "read_windows",
    "evaluate",
    "_check_answer",
    "LiveUsage._refresh",
    "PlanStore._refresh",
    "Connection.query",
    "collect (gc",
)
#: Frames of threads waiting for work, left out of the profile.
_IDLE_LEAVES = ("Condition.wait", "EpollSelector.select", "Event.wait", "select (selectors")

_WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  local path = "%s"
  if path == "quota" then
    path = "/api/v1/quotas/feature_" .. math.random(0, 9) .. "/check?dimension=gpt-4o&user_id=user-"
      .. math.random(0, 99999)
  end
  return wrk.format("GET", path)
end
"""


def plans_toml() -> str:
    """One hard plan metering the ten benchmark features in tokens by model, over three windows each."""
    features = "".join(
        f'\n[plans.free.features.feature_{n}]\nunit = "tokens"\ndimension = "model"\nlimits = [\n'
        '  { window = "5h", limit = 100000 },\n  { window = "7d", limit = 1000000 },\n'
        '  { window = "month", limit = 5000000 },\n'
        '  { window = "month", limit = 500000, dimension_value = "gpt-4o" },\n]\n'
        for n in range(FEATURES)
    )
    return f'default_plan = "free"\n\n[plans.free]\nname = "Free"\n{features}'


# ---------------------------------------------------------------- loader process


def load(data_dir: Path, budget_seconds: float) -> dict[str, float]:
    """Fill the rollups, the grants and the raw table within about ``budget_seconds``; return what was stored."""
    from usagemeter_clickhouse import SchemaOptions, connect, embedded_url, migrate

    client = connect(embedded_url(data_dir / "engine"), DATABASE, create_database=True)
    migrate(client, SchemaOptions(dimension_attributes=("model",)))
    started = time.perf_counter()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    pairs = USERS * FEATURES
    pair_sql = f"concat('user-', toString(number % {USERS})), concat('feature_', toString(intDiv(number, {USERS})))"
    # Today and yesterday by the minute (every pair's total and its gpt-4o slice at a few minutes each day),
    # in the minute and ingest rollups as the views write them; the day rollup follows from them.
    minute_rows = 0
    for first, minutes in ((today - timedelta(days=1), 24 * 60), (today, _minutes_since(today))):
        for chunk in range(2):
            moment = (
                f"toDateTime({int(first.timestamp())} + 60 * ((number * 7919 + {chunk * 104729}) % {minutes}), 'UTC')"
            )
            for dimension, value, quantity in (("''", "''", "(number % 5) + 2"), ("'model'", "'gpt-4o'", "1")):
                client.command(
                    f"INSERT INTO usage_minute SELECT {pair_sql}, {dimension}, {value}, 'web', {moment}, {quantity} "
                    f"FROM numbers({pairs})"
                )
                minute_rows += pairs
    client.command(
        "INSERT INTO usage_ingest SELECT Minute, UserId, FeatureKey, DimensionKey, DimensionValue, Minute, "
        "sum(Quantity) FROM usage_minute GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, Minute"
    )
    client.command(
        "INSERT INTO usage_day SELECT UserId, FeatureKey, DimensionKey, DimensionValue, ServiceName, toDate(Minute), "
        "sum(Quantity) FROM usage_minute GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, ServiceName, "
        "toDate(Minute)"
    )
    day_rows, days = 2 * pairs * 2, 2
    # Earlier days, whole: rows per pair and day, newest first: at least _MIN_DAYS, more while the budget
    # lasts (at most 60 days).
    while (time.perf_counter() - started < budget_seconds * 0.6 or days < _MIN_DAYS) and days < 60:
        day = (today - timedelta(days=days)).date().isoformat()
        client.command(
            f"INSERT INTO usage_day SELECT {pair_sql}, '', '', 'web', toDate('{day}'), (number % 7) + 1 "
            f"FROM numbers({pairs})"
        )
        day_rows += pairs
        days += 1
    client.command(
        "INSERT INTO usage_month SELECT UserId, FeatureKey, DimensionKey, DimensionValue, toStartOfMonth(Day), "
        "sum(Quantity) FROM usage_day GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue, toStartOfMonth(Day)"
    )
    grants = _load_grants(client, today)
    raw_points = _load_raw(client, started, budget_seconds)
    return {
        "minute_rows": minute_rows,
        "day_rows": day_rows,
        "days": days,
        "grants": grants,
        "raw_points": raw_points,
        "seconds": time.perf_counter() - started,
    }


def _minutes_since(moment: datetime) -> int:
    return max(1, int((datetime.now(UTC) - moment).total_seconds() // 60))


def _load_grants(client: object, today: datetime) -> int:
    """A grant of every feature to one user in ``_GRANT_EVERY``, active now and for a week."""
    count = USERS // _GRANT_EVERY * FEATURES
    client.command(  # type: ignore[attr-defined]
        "INSERT INTO usage_grants SELECT generateUUIDv4(), "
        f"concat('user-', toString((number % {USERS // _GRANT_EVERY}) * {_GRANT_EVERY})), "
        f"concat('feature_', toString(intDiv(number, {USERS // _GRANT_EVERY}))), '', 5000, "
        f"toDateTime64({int(today.timestamp()) - 86400}, 3, 'UTC'), "
        f"toDateTime64({int(today.timestamp()) + 7 * 86400}, 3, 'UTC'), "
        f"'bench', 'bench-admin', now64(3), NULL, '', '', 1 FROM numbers({count})"
    )
    return count


def _load_raw(client: object, started: float, budget_seconds: float) -> int:
    """Delta feature.usage points through the raw table, so the materialized views do their part."""
    import uuid

    columns = ["ServiceName", "MetricName", "Attributes", "TimeUnix", "Value", "AggregationTemporality", "IsMonotonic"]
    now_ns = time.time_ns()
    sent, batch = 0, 100_000
    rng = random.Random(7)
    while (time.perf_counter() - started < budget_seconds or sent < _MIN_RAW_POINTS) and sent < 5_000_000:
        attributes = [
            {
                "user.id": f"user-{rng.randrange(USERS)}",
                "feature.key": f"feature_{rng.randrange(FEATURES)}",
                "model": "gpt-4o",
            }
            for _ in range(batch)
        ]
        times = [now_ns - rng.randrange(3_600_000_000_000) for _ in range(batch)]
        data = [
            ["web"] * batch,
            ["feature.usage"] * batch,
            attributes,
            times,
            [1.0] * batch,
            [1] * batch,
            [True] * batch,
        ]
        client.insert(  # type: ignore[attr-defined]
            "otel_metrics_sum",
            data,
            column_names=columns,
            column_oriented=True,
            settings={"insert_deduplication_token": uuid.uuid4().hex},
        )
        sent += batch
    return sent


# ---------------------------------------------------------------- server processes


def serve(data_dir: Path, port: int) -> None:
    """The usagemeter API on the loaded database, served as the command serves it (one worker, its client limits)."""
    from pydantic import SecretStr

    from usagemeter._serving import api_server
    from usagemeter_api import ApiSettings, create_app
    from usagemeter_clickhouse import connect, embedded_url

    plans = data_dir / "plans.toml"
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), plans_file=plans, api_port=port)
    app = create_app(settings, lambda: connect(embedded_url(data_dir / "engine"), DATABASE))
    _load_live_view(app.state.services.live_usage, data_dir)
    api_server(app, settings, "warning").run()


def _load_live_view(live: object, data_dir: Path) -> None:
    """Load the in-memory quota view before serving, and note how long it took and the memory it holds."""
    import resource

    from usagemeter_api.domain.usage.live import LiveUsage

    assert isinstance(live, LiveUsage)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resident_before = _resident_mb()
    started = time.perf_counter()
    live.start()
    while not live.ready:
        time.sleep(0.05)
    loaded_after = time.perf_counter() - started
    # The loader's raw points are re-read by every refresh until their ingest minutes settle.
    serving_from = datetime.now(UTC)
    while (live.watermark or serving_from) <= serving_from:
        time.sleep(0.5)
    figures = {
        "seconds": loaded_after,
        "settle_seconds": time.perf_counter() - started - loaded_after,
        "rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "held_mb": _resident_mb() - resident_before,
    }
    (data_dir / "live.json").write_text(json.dumps(figures))


def _resident_mb() -> float:
    """The process's resident memory now (Linux)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def serve_bare(port: int) -> None:
    """The baseline: a bare FastAPI app returning a constant JSON, served by the same server as the API.

    Both sit behind the product's per-connection limits, so the ratio measures what the API's own code
    costs; what the limits cost against plain uvicorn is measured by bench/hostile.py.
    """
    from fastapi import FastAPI
    from pydantic import SecretStr

    from usagemeter._serving import api_server
    from usagemeter_api import ApiSettings

    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare() -> dict[str, object]:
        return {"allowed": True, "remaining": 8, "used": 42}

    api_server(app, ApiSettings(jwt_secret=SecretStr(SECRET), api_port=port), "warning").run()


# ---------------------------------------------------------------- load generation (this process)


def _token(user: str, admin: bool) -> str:
    from usagemeter_api import mint_token

    return mint_token(SECRET, user, admin=admin, ttl_seconds=3600)


def wrk(base: str, path: str, token: str, seconds: int, connections: int = 32) -> float:
    """Requests per second ``wrk`` sustains against ``path`` ("quota" = random quota checks)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % (token, path))
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, base]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    os.unlink(script.name)
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    line = next(line for line in output.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])


def quota_paths(count: int, seed: int) -> list[str]:
    """Quota checks of random users and features."""
    rng = random.Random(seed)
    return [QUOTA_PATH.format(feature=rng.randrange(FEATURES), user=rng.randrange(USERS)) for _ in range(count)]


# ---------------------------------------------------------------- orchestration


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args])


def _profile(pid: int, seconds: int, run: object) -> list[tuple[str, float]]:
    """Share of the busy samples under each API or engine frame (py-spy) while ``run()`` loads the server."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return []
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    command = [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(out)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run()  # type: ignore[operator]
    recorder.wait(timeout=seconds + 60)
    if not out.exists():
        return []
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(frame.startswith(_IDLE_LEAVES) for frame in frames):
            continue
        total += int(count)
        # Per function, whatever line of it was running.
        for frame in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            if frame.startswith(_PROFILED):
                inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:8]
    return [(name, count / max(total, 1) * 100) for name, count in ranked]


def run(load_seconds: float, duration: float) -> str:
    """Load, serve, measure; return the markdown results section."""
    work = Path(tempfile.mkdtemp(prefix="usagemeter-bench-api-"))
    (work / "plans.toml").write_text(plans_toml())
    loaded = json.loads(
        subprocess.run(
            [sys.executable, __file__, "_load", str(work), str(load_seconds)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
    )
    api_port, bare_port = free_port(), free_port()
    api, bare = _start(["_serve", str(work), str(api_port)]), _start(["_bare", str(bare_port)])
    try:
        api_base, bare_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        wait_ready(api_base + "/api/v1/health", deadline_seconds=400)
        wait_ready(bare_base + BARE_PATH)
        loaded.update({f"live_{name}": value for name, value in json.loads((work / "live.json").read_text()).items()})
        return _measure(api_base, bare_base, api, loaded, duration)
    finally:
        for process in (api, bare):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _measure(
    api_base: str, bare_base: str, api: subprocess.Popen[bytes], loaded: dict[str, float], duration: float
) -> str:
    admin = _token("bench-admin", admin=True)
    _check_exact(api_base, admin)
    open_loop(api_base, quota_paths(500, 1), 100, 2, admin)  # warm-up
    open_loop(bare_base, [BARE_PATH], 100, 2, admin)
    latency: dict[str, tuple[list[float], dict[str, int]]] = {}
    latency["quota check at 100 rps"] = open_loop(api_base, quota_paths(int(100 * duration), 100), 100, duration, admin)
    # Alternating rounds at the target rate: a burst of other work on the shared machine hits both alike.
    rounds: list[tuple[float, float]] = []
    for number in range(_LATENCY_ROUNDS):
        bare = open_loop(bare_base, [BARE_PATH], 1000, duration, admin)
        quota = open_loop(api_base, quota_paths(int(1000 * duration), 1000 + number), 1000, duration, admin)
        _drain(api_base)
        rounds.append((percentile(bare[0], 0.99), percentile(quota[0], 0.99)))
        for name, (values, failures) in (("bare FastAPI", bare), ("quota check", quota)):
            pooled, failed = latency.setdefault(f"{name} at 1,000 rps", ([], {}))
            pooled.extend(values)
            for reason, count in failures.items():
                failed[reason] = failed.get(reason, 0) + count
    seconds = max(5, int(duration))
    # Alternating short runs, so a burst of other work on the shared machine hits both alike.
    bare_runs, quota_runs = [], []
    for _ in range(_THROUGHPUT_ROUNDS):
        bare_runs.append(wrk(bare_base, BARE_PATH, admin, max(3, seconds // _THROUGHPUT_ROUNDS)))
        quota_runs.append(wrk(api_base, "quota", admin, max(3, seconds // _THROUGHPUT_ROUNDS)))
    _drain(api_base)
    rng = random.Random(3)
    dashboard_paths = [DASHBOARD_PATH.format(user=rng.randrange(USERS)) for _ in range(int(_DASHBOARD_RPS * duration))]
    dashboard_ms, dashboard_failures = open_loop(api_base, dashboard_paths, _DASHBOARD_RPS, duration, admin)
    if dashboard_failures:
        raise RuntimeError(f"dashboard requests failed: {dashboard_failures}")
    # The shared part of the dashboard read anew on every request: the cost a cache refresh pays.
    latency["health/details (uncached), sequential"] = (
        asyncio.run(closed_loop(api_base, ["/api/v1/health/details"] * 100, admin)),
        {},
    )
    profile = _profile(api.pid, seconds, lambda: wrk(api_base, "quota", admin, seconds))
    # The client's own share: the bare endpoint again with nothing else of the benchmark running.
    api.terminate()
    api.wait(timeout=30)
    latency["bare FastAPI at 1,000 rps, API stopped"] = open_loop(bare_base, [BARE_PATH], 1000, duration, admin)
    return _report(loaded, latency, rounds, quota_runs, bare_runs, dashboard_ms, profile)


def _drain(api_base: str) -> None:
    """Wait until the server has worked off a backlog left by an overload (health answers fast again)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = time.perf_counter()
        httpx.get(api_base + "/api/v1/health", timeout=120)
        if time.perf_counter() - started < 0.05:
            return
        time.sleep(0.5)


def _check_exact(api_base: str, token: str) -> None:
    """The check (in-memory view) and the month's usage series (a ClickHouse query) agree for a sample of pairs."""
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(11)
    for _ in range(200):
        user, feature = rng.randrange(USERS), rng.randrange(FEATURES)
        check = httpx.get(api_base + QUOTA_PATH.format(feature=feature, user=user), headers=headers).json()
        series = httpx.get(
            f"{api_base}/api/v1/analytics/usage/feature_{feature}",
            params={"user_id": f"user-{user}", "period": "month"},
            headers=headers,
        ).json()
        month = next(item for item in check["limits"] if item["window"] == "month" and not item["dimension_value"])
        if month["used"] != series["total"] or series["total"] <= 0:
            raise RuntimeError(f"used differs for user-{user} feature_{feature}: {check} vs {series['total']}")


def _report(
    loaded: dict[str, float],
    latency: dict[str, tuple[list[float], dict[str, int]]],
    rounds: list[tuple[float, float]],
    quota_runs: list[float],
    bare_runs: list[float],
    dashboard_ms: list[float],
    profile: list[tuple[str, float]],
) -> str:
    def row(name: str, values: list[float], failures: dict[str, int] | None = None) -> str:
        p50, p95, p99 = (percentile(values, q) for q in (0.5, 0.95, 0.99))
        failed = sum((failures or {}).values())
        return f"| {name} | {len(values):,} | {failed:,} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {max(values):.1f} |"

    quota_rps, bare_rps = sum(quota_runs) / len(quota_runs), sum(bare_runs) / len(bare_runs)
    ratio = quota_rps / bare_rps * 100
    quota_p99 = percentile(latency["quota check at 1,000 rps"][0], 0.99)
    bare_p99 = percentile(latency["bare FastAPI at 1,000 rps"][0], 0.99)
    p99_ratio = quota_p99 / bare_p99
    round_seconds = len(latency["bare FastAPI at 1,000 rps"][0]) / 1000 / len(rounds)
    lines = [
        "## REST API",
        "",
        f"`bench/api.py`, Python {platform.python_version()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d};"
        f" load average {os.getloadavg()[0]:.1f} when the measurements ended (the machine is shared).",
        "",
        f"Dataset (fresh embedded database, {USERS:,} users x {FEATURES} features,"
        f" loaded in {loaded['seconds']:.0f} s):"
        f" {loaded['day_rows']:,.0f} day-rollup rows ({loaded['days']:.0f} days, every pair every day),"
        f" {loaded['minute_rows']:,.0f} minute-rollup rows for today and yesterday (each pair's total and its"
        " gpt-4o slice; the day, month and ingest rows derived from them), inserted pre-aggregated with"
        f" `INSERT … SELECT FROM numbers()`, {loaded['grants']:,.0f} active grants, plus {loaded['raw_points']:,.0f}"
        " raw `feature.usage` delta points (model gpt-4o) through `otel_metrics_sum` and the materialized views."
        " Every feature is limited per rolling 5 h, per rolling 7 d, per month, and per month for gpt-4o; each"
        " check asks `dimension=gpt-4o`, so it reads four windows and counts the user's grants.",
        "",
        "The API's in-memory quota view (month, week, day, lifetime, 5 h and 7 d per user, feature and slice)"
        f" loaded in"
        f" {loaded['live_seconds']:.1f} s; loading grew the process's peak memory by {loaded['live_rss_mb']:,.0f} MB"
        f" (the load query's result on its way in), and once loaded the process's resident memory stayed"
        f" {loaded['live_held_mb']:,.0f} MB above its level before (the view and the engine's caches);"
        " before measuring, 200 random checks' month totals were compared with the month's usage series read from"
        " ClickHouse"
        " (`/analytics/usage`) and all agreed. The API served once the loader's raw points had settled into it"
        f" ({loaded['live_settle_seconds']:.0f} s later): until an ingest minute has settled, every refresh"
        " re-reads it.",
        "",
        "Latency at an offered rate (open loop: timed from each request's scheduled send, so queueing counts;"
        f" a lean client in its own process: pre-encoded HTTP/1.1 GETs on {CONNECTIONS} raw keep-alive"
        " connections, one request in flight on each; a random user and feature per check out of a million"
        " pairs; failed = unanswered 30 s after its schedule or not 200; the health/details row is sequential"
        " httpx requests, timed from their send):",
        "",
        "| load | ok | failed | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
        *(row(name, values, failures) for name, (values, failures) in latency.items()),
        row(f"dashboard-metrics at {_DASHBOARD_RPS} rps", dashboard_ms),
        "",
        f"The 1,000 rps rows pool {len(rounds)} alternating rounds of {round_seconds:.0f} s"
        " (bare, then the check); each round's p99:",
        "",
        "| round | bare p99 ms | quota check p99 ms | ratio |",
        "|---|---|---|---|",
        *(f"| {n} | {bare:.2f} | {quota:.2f} | {quota / bare:.2f}x |" for n, (bare, quota) in enumerate(rounds, 1)),
        "",
        f"Maximum throughput (`wrk -t2 -c32`, one uvicorn worker each with uvloop and httptools, both behind the"
        f" product's per-connection limits; {len(bare_runs)} alternating runs each, mean):",
        "",
        "| endpoint | requests/s | runs | vs bare |",
        "|---|---|---|---|",
        f"| quota check | {quota_rps:,.0f} | {', '.join(f'{run:,.0f}' for run in quota_runs)} | {ratio:.1f} % |",
        f"| bare FastAPI | {bare_rps:,.0f} | {', '.join(f'{run:,.0f}' for run in bare_runs)} | 100 % |",
        "",
        f"Targets: quota p99 at 1,000 rps within 2x of bare FastAPI's → {_ratio_verdict(p99_ratio, 2)}"
        f" ({quota_p99:.2f} ms against {bare_p99:.2f} ms, pooled);"
        f" ≥ 50 % of bare throughput → {f'met ({ratio:.1f} %)' if ratio >= 50 else f'missed ({ratio:.1f} %)'};"
        f" dashboard p95 ≤ 50 ms → {_verdict(percentile(dashboard_ms, 0.95), 50)}.",
    ]
    if profile:
        lines += [
            "",
            "Where the API process is busy under the throughput load (py-spy samples, inclusive):",
            "",
        ]
        lines += [f"- {share:.1f} % `{name}`" for name, share in profile]
    lines += ["", *_ANALYSIS]
    return "\n".join(lines) + "\n"


_ANALYSIS = [
    "The check evaluates several windows, a dimension slice and grants (see docs/metering.md). What changed since"
    " the previous run of this bench (p99 5.41 ms at 1,000 rps against bare FastAPI's 1.60 ms, 3,424 checks/s,"
    " 32 % of bare): the in-memory view's refresh (four times a second) reads the newest ingested usage per entry"
    " and minute and sums it into each window itself, where one `sumIf` per window made the query several times"
    " as costly for ClickHouse to plan; ClickHouse's clock is read every 30 s and carried forward rather than"
    " queried every cycle; the plan store's version probe is one `UNION ALL`; together the background queries"
    " cost ClickHouse about a third of what they did, CPU the check's tail had paid for. A check reads all its"
    " windows from the view at once, and it reads its path and query parameters itself (one pydantic model,"
    " FastAPI's own 422 errors) instead of declaring them, since FastAPI works out every declared parameter's"
    " kind again on each request. Both servers run uvicorn with uvloop and httptools, so the bare baseline gains"
    " from them as much as the API does. The latency client is a lean raw-socket one; its bare row shows what it"
    " adds itself. The 1,000 rps comparison alternates rounds of both endpoints, as the throughput one does, so a"
    " burst of other work on the shared machine hits both alike.",
    "",
    "What limits the check now: FastAPI's and uvicorn's own per-request work, as for the bare endpoint, then the"
    " check's own code (token lookup, plan snapshot, one view read, each limit's figures, JSON). The dashboard"
    " answers the user's quotas from the view; its shared part (conversions, workers, health: the health/details"
    " row shows what reading it costs) is reused for 2 s and then read anew in the background while the previous"
    " one is served, so a request waits for those reads only when none is younger than 4 s. Its slowest requests"
    " are the first one, which reads the shared part before answering, and presumably those that meet a"
    " background read competing for the same two CPUs.",
    "",
    "The client: the last bare row, taken after the API process was stopped, is what the client itself adds at"
    " 1,000 rps; the other bare rows ran beside the idle API process, whose view refresh (every 0.25 s) and plan"
    " and grant revalidation (every 0.5 s) take CPU from the same two cores, as they do during the quota rows.",
]


def _ratio_verdict(ratio: float, target: float) -> str:
    return f"met: {ratio:.2f}x" if ratio <= target else f"missed: {ratio:.2f}x"


def _verdict(value: float, target: float) -> str:
    return f"met ({value:.2f} ms)" if value <= target else f"missed: {value:.2f} ms, {value / target:.1f}x the target"


def main() -> None:
    """Run the benchmark (or one of its child processes) and write the results section."""
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        print(json.dumps(load(Path(sys.argv[2]), float(sys.argv[3]))), flush=True)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        serve_bare(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-seconds", type=float, default=90, help="Budget for loading the dataset.")
    parser.add_argument("--duration", type=float, default=15, help="Seconds per measurement.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        # Checked first: the dataset takes minutes to load before wrk is needed.
        sys.exit("bench/api.py: wrk is not installed (apt-get install wrk)")
    report = run(args.load_seconds, args.duration)
    print(report)
    RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
