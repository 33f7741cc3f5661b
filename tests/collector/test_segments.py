"""Reading a segment keeps every intact record: a torn tail ends it, damage in the middle costs only what it hit."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from usagemeter_collector._spool.resync import Damage, read_records, scan_segment
from usagemeter_collector._spool.segments import HEADER, frame


def _body(number: int, size: int = 40) -> bytes:
    """A record body shaped like the spool's: a MessagePack array starting with a 32-byte hash."""
    return bytes(msgpack.packb((bytes([number]) * 32, [], {"t": [[b"x" * size]]}), use_bin_type=True))


def _legacy_frame(body: bytes) -> bytes:
    """A record as segments written before the record magic hold it."""
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


_RECORDS = [_body(1), _body(2, 6000), _body(3)]


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        frame(_body(4))[:-2],
        frame(_body(4))[:5],
        HEADER.pack(b"USM\xa5", 4_000_000_000, 0, 0) + b"claims four gigabytes",
        frame(_body(4))[:-1] + b"!",
        b"\0" * 4096,
    ],
    ids=["none", "torn body", "torn header", "impossible length", "bad checksum", "zeros"],
)
def test_intact_records_are_read_up_to_a_torn_tail(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "segment.seg"
    path.write_bytes(b"".join(frame(body) for body in _RECORDS) + tail)
    items = list(scan_segment(path))
    assert items[:3] == _RECORDS
    assert items[3:] == ([Damage(path.stat().st_size - len(tail), len(tail), 1, tail=True)] if tail else [])


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        _legacy_frame(_body(4))[:-2],
        _legacy_frame(_body(4))[:5],
        struct.pack("<II", 4_000_000_000, 0) + b"claims four gigabytes",
        struct.pack("<II", 6, 0) + b"fourth",
        b"\0" * 4096,
    ],
    ids=["none", "torn body", "torn header", "impossible length", "bad checksum", "zeros"],
)
def test_segments_of_the_earlier_layout_are_read_up_to_a_torn_tail(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "segment.seg"
    path.write_bytes(b"".join(_legacy_frame(body) for body in _RECORDS) + tail)
    assert list(read_records(path)) == _RECORDS


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x40]) + data[offset + 1 :]


def _damage_one(path: Path, framed: list[bytes], record: int, where: int) -> int:
    """Write the records with one byte of ``record`` flipped, ``where`` bytes into it; the record's offset."""
    offset = sum(len(framed_record) for framed_record in framed[:record])
    path.write_bytes(_flip(b"".join(framed), offset + where))
    return offset


def _assert_one_record_lost(path: Path, framing: Callable[[bytes], bytes], record: int, where: int) -> None:
    """Flip one byte of ``record``, ``where`` bytes into it: that record is reported damaged, all others are read."""
    bodies = [_body(number) for number in range(50)]
    framed = [framing(body) for body in bodies]
    offset = _damage_one(path, framed, record, where)
    items = list(scan_segment(path))
    assert [item for item in items if isinstance(item, bytes)] == bodies[:record] + bodies[record + 1 :]
    assert [item for item in items if isinstance(item, Damage)] == [Damage(offset, len(framed[record]), 1, tail=False)]


@pytest.mark.parametrize("record", [0, 17, 48])
@pytest.mark.parametrize("where", [0, 5, 13, 30], ids=["magic", "length", "header checksum", "body"])
def test_one_flipped_byte_costs_one_record_and_the_rest_are_read(tmp_path: Path, where: int, record: int) -> None:
    _assert_one_record_lost(tmp_path / "segment.seg", frame, record, where)


@pytest.mark.parametrize("record", [0, 17, 48])
@pytest.mark.parametrize("where", [2, 30], ids=["length", "body"])
def test_records_after_damage_in_a_segment_of_the_earlier_layout_are_read(
    tmp_path: Path, where: int, record: int
) -> None:
    _assert_one_record_lost(tmp_path / "segment.seg", _legacy_frame, record, where)


def test_a_damaged_length_claiming_gigabytes_is_never_allocated(tmp_path: Path) -> None:
    bodies = [_body(number, 200_000) for number in range(40)]
    framed = [frame(body) for body in bodies]
    damaged_at = sum(len(record) for record in framed[:3])
    data = bytearray(b"".join(framed))
    data[damaged_at + 4 : damaged_at + 8] = struct.pack("<I", 3_000_000_000)
    path = tmp_path / "segment.seg"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        kept = sum(1 for _ in read_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept == 39
    # About one search window (1 MiB) and one record at a time, never the claimed 3 GB or the whole file.
    assert peak < 3 * 1024 * 1024 < len(data)
