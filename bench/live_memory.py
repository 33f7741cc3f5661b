"""In-memory usage view benchmark: bytes per entry once loaded, and the load's peak, against the previous layout.

Fills a fresh embedded database with ``--entries`` (user, slice) entries (five slices per user:
three feature totals and two dimension values) in the rollups the view reads: one month row, one
day row and one ingest row (within the last 7 days) per entry. Then, each in a process of its
own on that database:

* ``after``: the view (:class:`LiveUsage`) with month, week, day, lifetime and two rolling
  columns (5 h and 7 d), loaded in chunks, its refresh thread stopped once loaded;
* ``before``: the previous view's layout on the same rows, as a same-run baseline: one query
  read whole, one ``str`` key per entry in a ``dict[str, int]``, float64 rows (month, week, day).

Each reports the resident memory it added once loaded and the load's peak above its start
(VmHWM, reset first), and, in a second process, what tracemalloc sees (Python objects and numpy
arrays, without the engine). The view's answers for sampled entries are checked against direct
sums first.

    .venv/bin/python bench/live_memory.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _common import publish

from usagemeter_api.domain.periods import LIFETIME, period_window
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import Client, connect, embedded_url, migrate, tables

DATABASE = "bench_live"
ROLLING = (300, 10_080)
SLICES = [
    ("ai_tokens", "", ""),
    ("ai_tokens", "model", "gpt-4o"),
    ("ai_tokens", "model", "mini"),
    ("chat_messages", "", ""),
    ("image_generation", "", ""),
]
_MB = 1024 * 1024

_FILL = """
INSERT INTO {table} ({columns})
SELECT {select}
FROM (SELECT number AS n FROM numbers({entries}))
"""

_PREVIOUS_SQL = f"""
SELECT UserId, FeatureKey, DimensionKey, DimensionValue,
    sumIf(toFloat64(Quantity), Day >= {{month_start:Date}} AND Day < {{month_end:Date}}),
    sumIf(toFloat64(Quantity), Day >= {{week_start:Date}} AND Day < {{week_end:Date}}),
    sumIf(toFloat64(Quantity), Day = {{today:Date}})
FROM {tables.USAGE_DAY} WHERE Day >= {{hold_start:Date}}
GROUP BY UserId, FeatureKey, DimensionKey, DimensionValue
"""


def _slice_sql(part: int) -> str:
    return f"[{', '.join(repr(entry[part]) for entry in SLICES)}][n % 5 + 1]"


def fill(client: Client, entries: int) -> None:
    """One month, day and ingest row per entry, with quantities of six decimals."""
    keys = f"concat('user-', toString(intDiv(n, 5))), {_slice_sql(0)}, {_slice_sql(1)}, {_slice_sql(2)}"
    quantity = "toDecimal128(n % 1000, 6) + toDecimal128('0.000001', 6)"
    fills = [
        (tables.USAGE_MONTH, "toStartOfMonth(today())", "Month"),
        (tables.USAGE_DAY, "today()", "Day"),
    ]
    for table, moment, column in fills:
        columns = f"UserId, FeatureKey, DimensionKey, DimensionValue, {column}, Quantity"
        select = f"{keys}, {moment}, {quantity}"
        client.command(_FILL.format(table=table, columns=columns, select=select, entries=entries))
    minute = "toStartOfMinute(now('UTC')) - toIntervalMinute((n * 7919) % 10080 + 2)"
    columns = "IngestMinute, UserId, FeatureKey, DimensionKey, DimensionValue, Minute, Quantity"
    client.command(
        _FILL.format(
            table=tables.USAGE_INGEST,
            columns=columns,
            select=f"{minute}, {keys}, {minute}, {quantity}",
            entries=entries,
        )
    )


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / _MB
    raise RuntimeError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def load_after(url: str) -> tuple[LiveUsage, int]:
    """The view, loaded, with its refresh thread stopped."""
    live = LiveUsage(lambda: connect(url, DATABASE), refresh_seconds=3600, rolling_minutes=lambda: ROLLING)
    live.start()
    while not live.ready:
        time.sleep(0.05)
    live.close()
    return live, live.entries


def load_before(url: str) -> tuple[object, int]:
    """The previous layout: the query read whole, a key string per entry, float64 rows."""
    client = connect(url, DATABASE)
    now = datetime.now(UTC)
    windows = {kind: period_window(kind, now) for kind in ("month", "week", "day")}
    parameters: dict[str, object] = {"today": now.date(), "hold_start": windows["month"].start.date()}
    for kind, window in windows.items():
        parameters[f"{kind}_start"], parameters[f"{kind}_end"] = window.start.date(), window.end.date()
    users, features, keys, values, *sums = client.query(_PREVIOUS_SQL, parameters=parameters).result_columns
    client.close()
    rows: dict[str, int] = {}
    for user, feature, key, value in zip(users, features, keys, values, strict=True):
        rows[f"{len(feature)}:{feature}:{len(key)}:{key}:{len(value)}:{value}:{user}"] = len(rows)
    totals = np.column_stack([np.asarray(column, dtype=np.float64) for column in sums])
    del users, features, keys, values, sums
    return (rows, totals), len(rows)


def measure(variant: str, url: str, traced: bool) -> dict[str, float]:
    """Memory ``variant`` adds once loaded, and its load's peak above the start (MB)."""
    loader: Callable[[str], tuple[object, int]] = load_after if variant == "after" else load_before
    connect(url, DATABASE).close()  # the engine up before the baseline
    if traced:
        tracemalloc.start()
        _held, count = loader(url)
        current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"entries": count, "traced_mb": current / _MB, "traced_peak_mb": traced_peak / _MB}
    start = _status("VmRSS")
    _reset_peak()
    began = time.monotonic()
    _held, count = loader(url)  # kept alive while measured
    seconds = time.monotonic() - began
    peak = _status("VmHWM")
    return {"entries": count, "rss_mb": _status("VmRSS") - start, "peak_mb": peak - start, "seconds": seconds}


def check(url: str, entries: int, samples: int = 200) -> None:
    """The view's answers for sampled entries equal the rollups' own sums."""
    live, _ = load_after(url)
    client = connect(url, DATABASE)
    now = datetime.now(UTC)
    checks = [(period_window("month", now), tables.USAGE_DAY), (LIFETIME, tables.USAGE_MONTH)]
    for number in random.Random(7).sample(range(entries), samples):
        user, part = f"user-{number // 5}", Slice(*SLICES[number % 5])
        for window, table in checks:
            sql = (
                f"SELECT toInt64(sum(Quantity) * 1000000) FROM {table} WHERE UserId = {{u:String}}"
                " AND FeatureKey = {f:String} AND DimensionKey = {k:String} AND DimensionValue = {v:String}"
            )
            parameters = {"u": user, "f": part.feature_key, "k": part.dimension_key, "v": part.dimension_value}
            expected = int(client.query(sql, parameters=parameters).result_rows[0][0])
            assert live.used(user, [part], window) == [expected], (user, part, window)
    client.close()


def _run(variant: str, url: str, traced: bool, entries: int = 0) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", variant, "--url", url, "--entries", str(entries)]
    command += ["--traced"] if traced else []
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def report(entries: int, results: dict[str, dict[str, float]]) -> None:
    """Write the figures to docs/benchmarks/live_memory.md and docs/benchmarks.md."""
    per = {
        variant: {key: value * _MB / entries for key, value in figures.items()} for variant, figures in results.items()
    }
    after, before = per["after"], per["before"]
    lines = [
        "## In-memory usage view: memory per entry",
        "",
        f"{entries:,} (user, slice) entries ({entries // 5:,} users x 5 slices: three feature totals and two",
        "dimension values) in the embedded engine's rollups; each variant loaded in a process of its own on the",
        "same database, same run (bench/live_memory.py). After: the view with month, week, day, lifetime and two",
        "rolling columns (5 h, 7 d) as int64 micro-units, loaded in chunks. Before: the previous view's layout",
        "on the same rows (its query read whole, a `str` key per entry in a `dict[str, int]`, float64 month, week",
        "and day). RSS: resident memory added once loaded, and the load's peak above the start (VmHWM), engine",
        "included; traced: what tracemalloc sees (Python objects and numpy arrays). 200 sampled entries' month",
        "and lifetime answers were checked against the rollups' sums first.",
        "",
        "| bytes per entry | after (6 windows) | before (3 windows) | after / before |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("traced_mb", "traced, once loaded"),
        ("rss_mb", "RSS added, once loaded"),
        ("peak_mb", "RSS peak while loading"),
        ("traced_peak_mb", "traced peak while loading"),
    ):
        lines.append(f"| {label} | {after[key]:,.0f} | {before[key]:,.0f} | {after[key] / before[key]:.2f} |")
    lines += [
        "",
        f"Load time: after {results['after']['seconds']:.1f} s, before {results['before']['seconds']:.1f} s.",
        "",
    ]
    target = "≤ 200 B an entry (6 windows); no big load peak"
    measured = f"{after['traced_mb']:.0f} B traced, {after['rss_mb']:.0f} B RSS; load peak {after['peak_mb']:.0f} B"
    baseline = f"previous layout: {before['traced_mb']:.0f} B traced, load peak {before['peak_mb']:.0f} B"
    verdict = "met" if after["traced_mb"] <= 200 else "not met"
    publish(
        "live_memory", "\n".join(lines), [("in-memory usage view, 1 M entries", target, measured, baseline, verdict)]
    )
    print("\n".join(lines))


def main() -> None:
    """Fill a database, check the view, measure both variants, publish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--measure", choices=("after", "before", "prepare"))
    parser.add_argument("--url")
    parser.add_argument("--traced", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.measure == "prepare":
        client = connect(args.url, DATABASE, create_database=True)
        migrate(client)
        fill(client, args.entries)
        client.close()
        check(args.url, args.entries)
        print(json.dumps({}))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.url, args.traced)))
        return
    # Every step in a process of its own: the engine's data directory is held by one process at a time.
    with tempfile.TemporaryDirectory(prefix="usagemeter-live-") as folder:
        url = embedded_url(folder)
        _run("prepare", url, traced=False, entries=args.entries)
        results: dict[str, dict[str, float]] = {}
        for variant in ("after", "before"):
            results[variant] = _run(variant, url, traced=False) | _run(variant, url, traced=True)
        report(args.entries, results)


if __name__ == "__main__":
    main()
