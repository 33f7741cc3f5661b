"""A real small filesystem for the spool (a tmpfs of a few MiB) and a file that fills it up."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_CHUNK = b"\0" * 65536


@contextlib.contextmanager
def small_disk(directory: Path, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``directory`` for the duration; skips the test where that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the spool needs root")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the spool: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


class Filler:
    """A file that takes up every free byte of its filesystem, topped up on demand, until it is removed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> bool:
        """Write until the filesystem is full; True (so it can be polled alongside a condition)."""
        with open(self.path, "ab", buffering=0) as out:
            try:
                while True:
                    out.write(_CHUNK)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
            # Whatever fits of a last, smaller write: not one byte is left free.
            for size in (4096, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        out.write(_CHUNK[:size])
        return True

    def remove(self) -> None:
        """Give the space back."""
        self.path.unlink()
