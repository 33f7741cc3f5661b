"""Spool segment files: length-delimited, checksummed records, and the durable file operations around them.

A record is ``<u32 length><u32 crc32><body>``. A crash can leave a torn record
at the end of the segment being written; reading stops there, and nothing in
it was acknowledged (acknowledgement follows fsync).
"""

from __future__ import annotations

import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
HASHES_SUFFIX = ".hashes"
_HEADER = struct.Struct("<II")


def new_segment_name() -> str:
    """A name unique across restarts and collectors that sorts by creation time."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def frame(body: bytes) -> bytes:
    """``body`` as one length-delimited, checksummed record."""
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def read_records(path: Path) -> Iterator[bytes]:
    """The intact records of a segment, stopping at a torn or corrupt tail."""
    # Record by record: a whole 16 MiB segment in memory at once would only add to the peak.
    with open(path, "rb") as segment:
        size = os.fstat(segment.fileno()).st_size
        offset = 0
        while len(header := segment.read(_HEADER.size)) == _HEADER.size:
            length, checksum = _HEADER.unpack(header)
            # A torn header may claim any length; never read (or allocate) past the end of the file.
            body = segment.read(length) if offset + _HEADER.size + length <= size else b""
            if len(body) != length or zlib.crc32(body) != checksum:
                logger.warning("segment %s ends in a torn record at byte %d; the rest is ignored", path.name, offset)
                return
            yield body
            offset += _HEADER.size + length


def fsync_dir(directory: Path) -> None:
    """Make created, renamed or deleted entries of ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (write, fsync, rename, fsync dir)."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)


def open_segment(directory: Path, name: str) -> BinaryIO:
    """A new segment file for appending, its directory entry made durable."""
    out = open(directory / (name + SEGMENT_SUFFIX), "xb")  # noqa: SIM115 - the spool keeps it open
    fsync_dir(directory)
    return out


def segment_names(directory: Path) -> list[str]:
    """Names of the segments in ``directory``, oldest first."""
    return sorted(p.name.removesuffix(SEGMENT_SUFFIX) for p in directory.glob("*" + SEGMENT_SUFFIX))
