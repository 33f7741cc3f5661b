"""The spool's state files read back strictly, and damaged ones moved aside.

Series states are kept in one binary format, for the snapshot and for each
sealed segment's sidecar alike::

    b"USAGEMETER-SERIES-1\\n" <u16 length> <covered segment name> <entries of ENTRY_BYTES> <u32 crc32 of all before>

Snapshots written before this format (MessagePack ``(covered, [(key, state), ...])``)
are still read. Request-hash sidecars are MessagePack ``[(sha256 digest, seen), ...]``.
A file that is not exactly of its shape raises :class:`DamagedStateFile` with the reason.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from usagemeter_collector._spool.segments import FILE_MODE, fsync_dir, quarantine_dir
from usagemeter_collector._spool.series import ENTRY_BYTES, SeriesState, series_digest, unpack_entries

logger = logging.getLogger(__name__)

SERIES_MAGIC = b"USAGEMETER-SERIES-1\n"
_NAME_LENGTH = struct.Struct("<H")
_CHECKSUM = struct.Struct("<I")
_DIGEST_BYTES = 32

SeriesEntries = Iterator[tuple[bytes, SeriesState, float]]


class DamagedStateFile(ValueError):
    """A state file whose content is not what the collector writes."""


def encode_series_file(covered: str, entries: bytes) -> bytes:
    """A series state file covering the segments up to ``covered``, holding ``entries`` (packed)."""
    name = covered.encode()
    body = SERIES_MAGIC + _NAME_LENGTH.pack(len(name)) + name + entries
    return body + _CHECKSUM.pack(zlib.crc32(body))


def decode_series_file(data: bytes, seen_fallback: float) -> tuple[str, SeriesEntries]:
    """The covered segment name and the entries of a series state file (or of a snapshot of the older format).

    ``seen_fallback`` stands for the last update time of series read from an older snapshot, which had none.
    """
    if not data.startswith(SERIES_MAGIC):
        return _decode_legacy_snapshot(data, seen_fallback)
    header = len(SERIES_MAGIC) + _NAME_LENGTH.size
    if len(data) < header + _CHECKSUM.size:
        raise DamagedStateFile(f"truncated ({len(data)} bytes)")
    (checksum,) = _CHECKSUM.unpack_from(data, len(data) - _CHECKSUM.size)
    if zlib.crc32(memoryview(data)[: -_CHECKSUM.size]) != checksum:
        raise DamagedStateFile("checksum mismatch (truncated or overwritten)")
    (name_length,) = _NAME_LENGTH.unpack_from(data, len(SERIES_MAGIC))
    entries = memoryview(data)[header + name_length : -_CHECKSUM.size]
    if len(entries) % ENTRY_BYTES or header + name_length > len(data) - _CHECKSUM.size:
        raise DamagedStateFile("entries are not whole")
    try:
        covered = bytes(data[header : header + name_length]).decode()
    except UnicodeDecodeError as exc:
        raise DamagedStateFile("covered segment name is not text") from exc
    return covered, unpack_entries(entries)


def _decode_legacy_snapshot(data: bytes, seen: float) -> tuple[str, SeriesEntries]:
    content = _unpack(data)
    if not (isinstance(content, list) and len(content) == 2 and isinstance(content[0], str)):
        raise DamagedStateFile("not a series snapshot: expected (covered segment, entries)")
    covered, entries = content
    if not isinstance(entries, list):
        raise DamagedStateFile("not a series snapshot: entries are not a list")
    states = [(series_digest(key), _legacy_state(state), seen) for key, state in (_pair(e) for e in entries)]
    return covered, iter(states)


def _pair(entry: Any) -> tuple[Any, Any]:
    if not (isinstance(entry, list) and len(entry) == 2):
        raise DamagedStateFile("a snapshot entry is not a (series, state) pair")
    return entry[0], entry[1]


def _legacy_state(state: Any) -> SeriesState:
    if not (isinstance(state, list) and len(state) == 3):
        raise DamagedStateFile("a series state is not (start time, time, value)")
    start_time, time, value = state
    if not (_is_int(start_time) and _is_int(time) and _is_number(value)):
        raise DamagedStateFile("a series state holds a value of the wrong type")
    return SeriesState(start_time, time, float(value))


def decode_hashes_file(data: bytes) -> list[tuple[bytes, float]]:
    """The (request digest, time seen) pairs of a request-hash sidecar."""
    content = _unpack(data)
    if not isinstance(content, list):
        raise DamagedStateFile("not a list of request hashes")
    pairs = []
    for entry in content:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise DamagedStateFile("an entry is not a (digest, time) pair")
        digest, seen = entry
        if not (isinstance(digest, bytes) and len(digest) == _DIGEST_BYTES and _is_number(seen)):
            raise DamagedStateFile("an entry holds a value of the wrong type")
        pairs.append((digest, float(seen)))
    return pairs


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises a handful of unrelated types for bad input
        raise DamagedStateFile(f"not valid MessagePack ({type(exc).__name__}: {exc})") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def quarantine(path: Path, reason: str, consequence: str) -> Path:
    """Move a damaged state file into the spool's quarantine folder (owner-only), logging what it means."""
    folder = quarantine_dir(path.parent)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.name}.{os.stat(path).st_mtime_ns}"
    os.replace(path, target)
    os.chmod(target, FILE_MODE)
    fsync_dir(folder)
    fsync_dir(path.parent)
    logger.error("spool state file %s is damaged (%s), moved to %s: %s", path.name, reason, target, consequence)
    return target
