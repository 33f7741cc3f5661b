"""Reading a segment record by record, past damaged bytes.

A record that fails its checks does not end the segment: the reader searches forward for the next
offset where an intact record starts and goes on from there, so damage costs the records it hit
and no others. In the current layout a record starts with a magic and a header checksum, so a
candidate is checked without reading its body, and a record whose header is intact but whose body
is not is skipped by its (checked) length. In the older layout a candidate is an offset whose body
starts as every record body does (a MessagePack array whose first item is a 32-byte hash) and whose
claimed length and body checksum hold. Memory stays bounded: the search reads fixed-size windows,
and no claimed length beyond the end of the file is ever read.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from usagemeter_collector._spool.segments import (
    HASHES_SUFFIX,
    HEADER,
    LEGACY_HEADER,
    MAGIC,
    QUARANTINE_DIR,
    SEGMENT_SUFFIX,
    keep_aside,
)
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

#: How much of a segment the search for the next record reads at a time.
_WINDOW = 1 << 20
#: Every record body starts with ``bin 8`` of 32 bytes (the request hash), right after its array header.
_BODY_MARK = b"\xc4\x20"
_BODY_ARRAYS = (b"\x93", b"\x96")


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that hold no intact record: ``length`` bytes from ``offset``.

    ``records`` is how many records they held as far as the layout tells (one per damaged stretch
    or record). ``tail`` marks damage that runs to the end of the file, which a crash during a write
    also leaves behind.
    """

    offset: int
    length: int
    records: int
    tail: bool


@dataclass(frozen=True)
class _Layout:
    header_size: int
    sync: bytes
    sync_offset: int
    legacy: bool


_CURRENT = _Layout(HEADER.size, MAGIC, 0, legacy=False)
_LEGACY = _Layout(LEGACY_HEADER.size, _BODY_MARK, LEGACY_HEADER.size + 1, legacy=True)


def scan_segment(path: Path) -> Iterator[bytes | Damage]:
    """The segment's intact record bodies in order, with a :class:`Damage` for each damaged stretch between them."""
    with open(path, "rb") as segment:
        size = segment.seek(0, 2)
        layout = _layout_of(segment, size)
        reader = _Reader(segment, size, layout)
        offset = 0
        while offset < size:
            record = reader.at(offset)
            if isinstance(record, bytes):
                yield record
                offset += layout.header_size + len(record)
                continue
            end = record if record is not None else _next_record(reader, segment, size, layout, offset)
            yield Damage(offset, end - offset, 1, tail=end == size)
            offset = end


def _layout_of(segment: BinaryIO, size: int) -> _Layout:
    """The layout of a segment: its first record tells, or, when that one is damaged, whether magics follow."""
    segment.seek(0)
    if segment.read(len(MAGIC)) == MAGIC:
        return _CURRENT
    if isinstance(_Reader(segment, size, _LEGACY).at(0), bytes):
        return _LEGACY
    return _CURRENT if _find(segment, MAGIC, 0, min(size, _WINDOW)) >= 0 else _LEGACY


def read_records(path: Path) -> Iterator[bytes]:
    """The intact record bodies of a segment, damaged stretches left out."""
    return (item for item in scan_segment(path) if isinstance(item, bytes))


class _Reader:
    """Checks of one candidate record in one layout."""

    def __init__(self, segment: BinaryIO, size: int, layout: _Layout) -> None:
        self._segment = segment
        self._size = size
        self._layout = layout

    def at(self, offset: int) -> bytes | int | None:
        """The body of the intact record at ``offset``; its end when only its body is damaged; None otherwise."""
        header = self._header(offset)
        if header is None:
            return None
        length, checksum = header
        body = self._segment.read(length)
        if zlib.crc32(body) == checksum:
            return body
        # A current header vouches for its length: only this one record is lost.
        return None if self._layout.legacy else offset + self._layout.header_size + length

    def starts_record(self, offset: int) -> bool:
        """Whether a record plausibly starts at ``offset`` (checked without its body where the layout allows)."""
        if not self._layout.legacy:
            return self._header(offset) is not None
        self._segment.seek(offset + LEGACY_HEADER.size)
        return self._segment.read(1) in _BODY_ARRAYS and isinstance(self.at(offset), bytes)

    def _header(self, offset: int) -> tuple[int, int] | None:
        size = self._layout.header_size
        self._segment.seek(offset)
        raw = self._segment.read(size)
        if len(raw) < size:
            return None
        if self._layout.legacy:
            length, checksum = LEGACY_HEADER.unpack(raw)
        else:
            magic, length, checksum, own = HEADER.unpack(raw)
            if magic != MAGIC or zlib.crc32(raw[: size - 4]) != own:
                return None
        # A damaged header may claim any length; never read (or allocate) past the end of the file. No record
        # is empty, and zeros (what a crash may leave where a write did not reach) would pass as an empty one.
        return (length, checksum) if 0 < length <= self._size - offset - size else None


def _next_record(reader: _Reader, segment: BinaryIO, size: int, layout: _Layout, after: int) -> int:
    """The offset of the next record after ``after`` that passes the layout's checks, or ``size``."""
    position = after + 1 + layout.sync_offset
    while (found := _find(segment, layout.sync, position, size)) >= 0:
        candidate = found - layout.sync_offset
        if candidate > after and reader.starts_record(candidate):
            return candidate
        position = found + 1
    return size


def _find(segment: BinaryIO, pattern: bytes, start: int, size: int) -> int:
    """The offset of the first ``pattern`` at or after ``start``, or -1; reads one window at a time."""
    position = start
    while position < size:
        segment.seek(position)
        window = segment.read(_WINDOW + len(pattern) - 1)
        found = window.find(pattern)
        if found >= 0:
            return position + found
        position += _WINDOW
    return -1


class SegmentRecords:
    """Reads a spool's segments past damage, reporting each damaged stretch once and keeping its bytes.

    Damaged bytes are copied to the quarantine folder (the segment itself is deleted once its intact
    records are inserted) and counted in ``spool_records_damaged``. A damaged end of the segment a
    crash may have cut short (the newest one at start, if it was never sealed) is what a write cut
    short leaves: it was never acknowledged and is neither counted nor kept.
    """

    def __init__(self, directory: Path, telemetry: Telemetry) -> None:
        self._directory = directory
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._reported: dict[str, set[int]] = {}
        self.maybe_torn: str | None = None

    def left_by_earlier_run(self, names: list[str]) -> None:
        """Note the segments an earlier run left (oldest first): only the one it wrote last can end in a write
        a crash cut short, and only if it was never sealed (sealing writes its hashes sidecar)."""
        sealed = bool(names) and (self._directory / (names[-1] + HASHES_SUFFIX)).exists()
        self.maybe_torn = names[-1] if names and not sealed else None

    def read(self, name: str) -> Iterator[bytes]:
        """The intact record bodies of segment ``name``."""
        for item in scan_segment(self._directory / (name + SEGMENT_SUFFIX)):
            if isinstance(item, bytes):
                yield item
            elif self._first_report(name, item.offset):
                self._damaged(name, item)

    def forget(self, name: str) -> None:
        """The segment is gone (inserted and deleted)."""
        with self._lock:
            self._reported.pop(name, None)

    def _first_report(self, name: str, offset: int) -> bool:
        with self._lock:
            offsets = self._reported.setdefault(name, set())
            fresh = offset not in offsets
            offsets.add(offset)
            return fresh

    def _damaged(self, name: str, damage: Damage) -> None:
        if damage.tail and name == self.maybe_torn:
            logger.info(
                "spool segment %s ends in a record cut short at byte %d (a write a crash interrupted, never "
                "acknowledged); it is ignored",
                name,
                damage.offset,
            )
            return
        self._telemetry.spool_records_damaged += damage.records
        kept = f"{name}{SEGMENT_SUFFIX}.{damage.offset}.damaged"
        logger.error(
            "spool segment %s: %d damaged bytes at byte %d lost %d acknowledged record(s); the records after "
            "them are kept, the damaged bytes copied to %s",
            name,
            damage.length,
            damage.offset,
            damage.records,
            self._directory / QUARANTINE_DIR / kept,
        )
        try:
            with open(self._directory / (name + SEGMENT_SUFFIX), "rb") as segment:
                segment.seek(damage.offset)
                data = segment.read(damage.length)
            keep_aside(self._directory, kept, data)
        except OSError as exc:
            logger.error("cannot keep the damaged bytes of spool segment %s: %s", name, exc)
