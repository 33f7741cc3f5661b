"""Reading a segment keeps every intact record and stops at a torn or corrupt tail."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from usagemeter_collector._segments import frame, read_records

_RECORDS = [b"first", b"second" * 1000, b"third"]


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        frame(b"fourth")[:-2],
        frame(b"fourth")[:5],
        struct.pack("<II", 4_000_000_000, 0) + b"claims four gigabytes",
        struct.pack("<II", 6, 0) + b"fourth",
    ],
    ids=["none", "torn body", "torn header", "impossible length", "bad checksum"],
)
def test_intact_records_are_read_up_to_a_torn_tail(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "segment.seg"
    path.write_bytes(b"".join(frame(body) for body in _RECORDS) + tail)
    assert list(read_records(path)) == _RECORDS
