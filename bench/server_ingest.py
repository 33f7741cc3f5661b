"""Server-mode ingest: points per second through a ``usagemeter collector`` process into a ClickHouse server process.

The server is the test suite's real ClickHouse 26.9 server on loopback (tests/clickhouse_server.py).
Each round runs bench/ingest.py's collector measurement against it (``usagemeter migrate`` and
``usagemeter collector`` on a fresh database, pre-encoded OTLP/gRPC requests from a separate
process, a point counted once the collector has committed it), then the baseline: the same
requests raw-inserted straight into the server's landing table with clickhouse-connect, as the
collector's writer does, with no collector in front.

    usagemeter bench server_ingest [--requests 200] [--points 5000] [--senders 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

# The repository root after this folder, for the test suite's ClickHouse server launcher.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import free_port, publish
from ingest import _cpu_seconds, insert_directly, measure_collector

from tests.clickhouse_server import ClickHouseServer

Round = tuple[dict[str, float], dict[str, float]]
#: The share of the baseline the collector is held to, as in embedded mode (bench/ingest.py).
TARGET_RATIO = 0.70


def _server_cpu(server: ClickHouseServer) -> float:
    assert server.process is not None
    return _cpu_seconds(Path(f"/proc/{server.process.pid}/stat"))


def through_collector(server: ClickHouseServer, database: str, args: argparse.Namespace) -> dict[str, float]:
    """bench/ingest.py's collector run, with migrate and the collector pointed at ``database`` on the server."""
    os.environ.pop("USAGEMETER_INGEST_TOKENS", None)
    os.environ.update(USAGEMETER_CLICKHOUSE_URL=server.url(), USAGEMETER_CLICKHOUSE_DATABASE=database)
    cpu = _server_cpu(server)
    result = measure_collector(args.requests, args.points, args.senders)
    return result | {"cpu_server": _server_cpu(server) - cpu, "load": os.getloadavg()[0]}


def straight_in(server: ClickHouseServer, database: str, args: argparse.Namespace) -> dict[str, float]:
    """The same requests inserted by this process into the landing table of a fresh database on the server."""
    from usagemeter_clickhouse import connect, migrate

    # The server's CPU counted from the migration on, as in the collector's run.
    cpu = _server_cpu(server)
    client = connect(server.url(), database, create_database=True)
    migrate(client)
    result = insert_directly(client, args.requests, args.points)
    client.close()
    return result | {"cpu_server": _server_cpu(server) - cpu}


def run(args: argparse.Namespace) -> list[Round]:
    """Alternate collector and baseline runs on one server, each on a database of its own."""
    server = ClickHouseServer(Path(tempfile.mkdtemp(prefix="usagemeter-bench-server-")), free_port(), free_port())
    server.start()
    try:
        return [
            (through_collector(server, f"collector_{n}", args), straight_in(server, f"direct_{n}", args))
            for n in range(args.rounds)
        ]
    finally:
        server.stop()


def _ratio(run: Round) -> float:
    return run[0]["rate"] / run[1]["rate"]


def report(args: argparse.Namespace, rounds: list[Round]) -> None:
    """Write docs/benchmarks/server_ingest.md and its rows in docs/benchmarks.md."""
    through, direct = sorted(rounds, key=_ratio)[len(rounds) // 2]
    ratio = _ratio((through, direct))
    each = "; ".join(
        f"{_ratio(r):.0%} ({r[0]['rate']:,.0f} against {r[1]['rate']:,.0f}, load average {r[0]['load']:.1f})"
        for r in rounds
    )
    rate = statistics.median(r[0]["rate"] for r in rounds)
    direct_rate = statistics.median(r[1]["rate"] for r in rounds)
    row = "| {} | {points:,.0f} | {seconds:.2f} | {rate:,.0f} | {cpu_server:.2f} |"
    text = f"""## Ingest in server mode (collector process → ClickHouse server process)

`usagemeter bench server_ingest --requests {args.requests} --points {args.points} --senders {args.senders} \
--rounds {args.rounds}`, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}; load
average {os.getloadavg()[0]:.1f} when it ended (other engineers' tests were running on the same two cores).

The server is a real ClickHouse 26.9 server process on 127.0.0.1 (the chDB wheel's `LocalServer`, as the server-mode
tests run it, tests/clickhouse_server.py). Each round: `usagemeter migrate` and `usagemeter collector` on a fresh
database, {args.requests} pre-encoded OTLP ExportMetricsServiceRequests of {args.points} delta `feature.usage`
points sent over OTLP/gRPC by {args.senders} senders in a separate process, a point counted once the collector
committed it (its `rows_inserted`); then the baseline: the same requests raw-inserted by the bench process with
clickhouse-connect into the landing table of another fresh database on the same server, as length-delimited protobuf
in chunks of one spool segment with the writer's insert settings and deduplication tokens, timed from its first
insert. The table shows the median round.

| path | points | seconds | points/s | server CPU s in the round (its migration included) |
|---|---|---|---|---|
{row.format("collector process → server (spool + insert over HTTP)", **through)}
{row.format("baseline: same inserts straight into the server, no collector", **direct)}

Ratio to the baseline: **{ratio:.1%}** (target ≥ {TARGET_RATIO:.0%}, as in embedded mode); collector end to end,
median of the rounds: **{rate:,.0f} points/s** (baseline median {direct_rate:,.0f} points/s). The {len(rounds)} rounds
in order, ratio (collector against baseline, points/s): {each}. Collector peak RSS (VmHWM; in server mode no engine
runs in it), the highest of the rounds: **{max(r[0]["rss_mb"] for r in rounds):,.0f} MB**. In the median round the
collector committed the points in {through["inserts"]:.0f} inserts taking {through["insert_seconds"]:.2f} s in all.

{READING}
"""
    publish(
        "server_ingest",
        text,
        [
            (
                "ingest in server mode, collector process → ClickHouse server process",
                f"≥ {TARGET_RATIO:.0%} of the baseline (as embedded)",
                f"{rate:,.0f} points/s over {args.requests * args.points / 1e6:g} M points, {ratio:.0%} of the baseline"
                " (rounds: " + ", ".join(f"{_ratio(r):.0%}" for r in rounds) + ")",
                f"same inserts straight into the server: {direct_rate:,.0f} points/s",
                f"{'met' if ratio >= TARGET_RATIO else 'missed'} ({ratio:.1%})",
            )
        ],
    )
    print(text)


READING = """Reading: in server mode ClickHouse decodes the spooled OTLP requests in its own process, so the
collector's work per point is what it does on receipt (the lean pass, the request hash, the spool's fsync) and
handing each sealed segment to the server over HTTP; the baseline pays only the last part. The server's CPU time in
a round is of the same order on both paths (the same inserts, views and merges of the same points; the table's last
column), so what separates them is the collector's own work: on two shared cores its receivers, the sender process
and the server compete for the same CPUs, which the baseline does not have to share, and the rounds spread widely
when other work lands on one of the two paths. Both paths name the format schema as a real clickhouse-server needs
it, by file name (`otlp_metrics.proto`, the collector's default against a server); this server finds the file in its
own directory, where the test launcher copies it as the compose stack mounts it into `format_schema_path`."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="collector then baseline runs; the median is shown")
    args = parser.parse_args()
    report(args, run(args))


if __name__ == "__main__":
    main()
