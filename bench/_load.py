"""Load generation for the HTTP benchmarks: a lean open-loop client, sequential requests, percentiles.

The open-loop client runs in its own process (``open_loop`` starts it): pre-encoded HTTP/1.1
GETs written on raw keep-alive connections, one request in flight on each, every request
timed from its scheduled send time so that queueing counts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

#: Keep-alive connections of the open-loop client; each carries one request at a time.
CONNECTIONS = 96
#: Seconds a request may wait for its answer before it counts as failed.
REQUEST_TIMEOUT = 30


def open_loop(
    base: str, paths: list[str], rate: float, seconds: float, token: str
) -> tuple[list[float], dict[str, int]]:
    """Latencies (ms) at ``rate`` requests/s for ``seconds``, measured by the lean client in its own process."""
    result = open_loop_run(base, paths, rate, seconds, token)
    return result["latencies"], result["failures"]


def open_loop_run(base: str, paths: list[str], rate: float, seconds: float, token: str) -> dict[str, Any]:
    """The lean client's whole result: ``latencies`` (ms), ``failures`` by reason, and ``achieved_rate``.

    ``achieved_rate`` is the requests answered per second from the first scheduled send to the last
    answer: below ``rate`` when the server (or the client) could not keep up with the schedule.
    """
    spec = {"base": base, "paths": paths, "rate": rate, "seconds": seconds, "token": token}
    with tempfile.TemporaryDirectory(prefix="usagemeter-load-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        # The result comes back in a file: a pipe cut the client's large answer short on a loaded machine.
        subprocess.run([sys.executable, __file__, str(spec_path)], check=True, capture_output=True)
        result: dict[str, Any] = json.loads((Path(folder) / "result.json").read_text())
    return result


def _encoded_requests(base: str, paths: list[str], token: str) -> list[bytes]:
    host = base.removeprefix("http://")
    return [f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode() for path in paths]


async def lean_open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Send pre-encoded GETs on a fixed schedule over ``CONNECTIONS`` keep-alive connections.

    Each request is timed from its scheduled send time, so waiting for a free connection
    (queueing in the client because the server is slow) counts in its latency; a request
    unanswered ``REQUEST_TIMEOUT`` s after its schedule counts as failed.
    """
    requests = _encoded_requests(spec["base"], spec["paths"], spec["token"])
    host, port = spec["base"].removeprefix("http://").split(":")
    rate, total = float(spec["rate"]), int(spec["rate"] * spec["seconds"])
    due: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    failures: dict[str, int] = {}
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(CONNECTIONS)]

    async def sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (item := await due.get()) is not None:
            scheduled, request = item
            writer.write(request)
            status, body = await _response(reader)
            if status != 200:
                reason = f"HTTP {status}: {body[:80]!r}"
                failures[reason] = failures.get(reason, 0) + 1
            else:
                latencies.append((time.perf_counter() - scheduled) * 1000)

    senders = [asyncio.create_task(sender(reader, writer)) for reader, writer in connections]
    start = time.perf_counter() + 0.05
    sent = 0
    while sent < total:
        now = time.perf_counter()
        # Everything due by now goes out together, so a late wake-up does not shift the schedule.
        while sent < total and start + sent / rate <= now:
            due.put_nowait((start + sent / rate, requests[sent % len(requests)]))
            sent += 1
        if sent < total:
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    for _ in senders:
        due.put_nowait(None)
    _, pending = await asyncio.wait(senders, timeout=REQUEST_TIMEOUT)
    for task in pending:
        task.cancel()
    finished = time.perf_counter()
    unanswered = total - len(latencies) - sum(failures.values())
    if unanswered:
        failures["timed out"] = unanswered
    for _, writer in connections:
        writer.close()
    achieved = (total - unanswered) / max(finished - start, 1e-9)
    return {"latencies": latencies, "failures": failures, "achieved_rate": achieved}


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return int(lines[0].split()[1]), body


def _run_client(spec_path: str) -> None:
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    result = uvloop.run(lean_open_loop(spec))
    Path(spec_path).with_name("result.json").write_text(json.dumps(result))


async def closed_loop(base: str, paths: list[str], token: str) -> list[float]:
    """Latencies (ms) of ``paths`` requested one after another."""
    latencies = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for path in paths:
            started = time.perf_counter()
            response = await client.get(path)
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


if __name__ == "__main__":
    _run_client(sys.argv[1])
