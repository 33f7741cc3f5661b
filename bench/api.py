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
from _api_report import report
from _common import free_port, wait_ready
from _load import closed_loop, open_loop, percentile

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
    dataset = {"users": USERS, "features": FEATURES, "dashboard_rps": _DASHBOARD_RPS}
    return report(loaded | dataset, latency, rounds, quota_runs, bare_runs, dashboard_ms, profile)


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
