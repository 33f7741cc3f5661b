"""Helpers the benchmark scripts share: free ports, waiting for a server to answer, publishing results."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, deadline_seconds: float = 120) -> None:
    """Return once ``url`` answers 200; raise RuntimeError after ``deadline_seconds``."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


DOCS = Path(__file__).resolve().parent.parent / "docs"


def publish(name: str, section: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    """Write ``section`` to docs/benchmarks/NAME.md and into docs/benchmarks.md, with its summary ``rows``.

    Each row is (what, target, measured, baseline, verdict); a row of the summary table with the same
    "what" is replaced, others are added at the table's end. The section replaces the one under the
    same ``## `` heading, or is added at the page's end.
    """
    (DOCS / "benchmarks").mkdir(exist_ok=True)
    (DOCS / "benchmarks" / f"{name}.md").write_text(section, encoding="utf-8")
    page = DOCS / "benchmarks.md"
    lines = _with_rows(page.read_text(encoding="utf-8").splitlines(), rows)
    page.write_text(_with_section("\n".join(lines) + "\n", section), encoding="utf-8")


def _with_rows(lines: list[str], rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    header = next(i for i, line in enumerate(lines) if line.startswith("| what |"))
    end = next((i for i in range(header, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = lines[header + 2 : end]
    for row in rows:
        text = "| " + " | ".join(row) + " |"
        same = [i for i, line in enumerate(table) if line.split("|")[1].strip() == row[0]]
        if same:
            table[same[0]] = text
        else:
            table.append(text)
    return lines[: header + 2] + table + lines[end:]


def _with_section(page: str, section: str) -> str:
    heading = section.splitlines()[0]
    start = page.find(f"\n{heading}\n")
    if start < 0:
        return page.rstrip("\n") + "\n\n" + section
    following = page.find("\n## ", start + len(heading) + 2)
    rest = page[following:] if following >= 0 else "\n"
    return page[: start + 1] + section.rstrip("\n") + "\n" + rest
