"""Hostile HTTP clients over real sockets (slow heads, huge headers) and a process's resident memory.

Shared by the tests and ``bench/hostile.py``: each client runs in a thread of its own and reports
what the server did to it.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

MIB = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    """What the server did to one hostile connection."""

    closed_by_server: bool
    status: int | None
    sent_bytes: int


def slowloris(port: int, *, pause: float = 0.25, rounds: int = 240, host: str = "127.0.0.1") -> Outcome:
    """Start a request head and add one header line per ``pause`` until the server closes it or rounds run out."""
    head = b"GET /api/v1/health HTTP/1.1\r\nHost: slow\r\n"
    return _trickle(host, port, head, b"X-Slow: 1\r\n", pause, rounds)


def slow_body(port: int, path: str, *, pause: float = 0.25, rounds: int = 240, host: str = "127.0.0.1") -> Outcome:
    """Send a request head announcing a 1 MiB body, then one body byte per ``pause`` until the server closes it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: slow\r\nContent-Type: application/x-protobuf\r\nContent-Length: {MIB}\r\n\r\n"
    )
    return _trickle(host, port, head.encode(), b"\x00", pause, rounds)


def huge_header(port: int, size: int, *, chunk: int = 64 * 1024, host: str = "127.0.0.1") -> Outcome:
    """Send a request whose ``Authorization`` header is ``size`` bytes long, and read the answer."""
    sent = 0
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            sent += _send(sock, b"GET /api/v1/health HTTP/1.1\r\nHost: huge\r\nAuthorization: Bearer ")
            block = b"x" * chunk
            while sent < size:
                sent += _send(sock, block)
            sent += _send(sock, b"\r\n\r\n")
            return Outcome(True, _status(_drain(sock)), sent)
    except OSError:
        return Outcome(True, None, sent)


def in_threads(calls: list[Callable[[], Outcome]]) -> Callable[[], list[Outcome]]:
    """Start every call in a thread of its own at once; the returned function waits and gives their outcomes."""
    outcomes: list[Outcome | None] = [None] * len(calls)

    def run(index: int) -> None:
        outcomes[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()

    def wait() -> list[Outcome]:
        for thread in threads:
            thread.join(120)
        return [o if o is not None else Outcome(False, None, 0) for o in outcomes]

    return wait


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


class Repeating:
    """Calls ``action`` every ``every`` seconds in a thread of its own while in use."""

    def __init__(self, every: float, action: Callable[[], object], *, join_seconds: float = 10.0) -> None:
        self.every, self._action, self._join_seconds = every, action, join_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(self._join_seconds)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._action()


class PeakRss(Repeating):
    """Samples a process's resident memory in a thread while in use; ``peak`` is the largest sample."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.peak = pid, rss_bytes(pid)
        super().__init__(every, self._sample)

    def _sample(self) -> None:
        self.peak = max(self.peak, rss_bytes(self.pid))


def _trickle(host: str, port: int, head: bytes, drip: bytes, pause: float, rounds: int) -> Outcome:
    """Send ``head``, then ``drip`` once per ``pause`` until the server answers or closes, or rounds run out."""
    sent = 0
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            sent += _send(sock, head)
            for _ in range(rounds):
                if select.select([sock], [], [], pause)[0]:
                    return Outcome(True, _status(_drain(sock)), sent)
                sent += _send(sock, drip)
    except OSError:
        return Outcome(True, None, sent)
    return Outcome(False, None, sent)


def _send(sock: socket.socket, data: bytes) -> int:
    sock.sendall(data)
    return len(data)


def _drain(sock: socket.socket) -> bytes:
    chunks = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and (chunk := sock.recv(65536)):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def _status(response: bytes) -> int | None:
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else None
