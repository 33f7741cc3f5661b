"""Spool segment files: checksummed records, and the durable, private file operations around them.

A record is ``<magic><u32 length><u32 crc32 of the body><u32 crc32 of the header before it><body>``.
The magic and the header's own checksum let a reader find the next record after damaged bytes
(see :mod:`usagemeter_collector._spool.resync`). Segments written before the magic existed hold
``<u32 length><u32 crc32><body>`` records; they are still read (a segment's first record tells
which layout it has: no earlier record was near the 2.7 GB the magic reads as a length).

Every file is created 0600 and every directory 0700, whatever the umask: the spool holds user ids
and their usage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import uuid
import zlib
from pathlib import Path

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
HASHES_SUFFIX = ".hashes"
#: Where segments ClickHouse refuses and damaged bytes of segments are kept, inside the spool.
QUARANTINE_DIR = "unstorable"
FILE_MODE = 0o600
DIR_MODE = 0o700
MAGIC = b"USM\xa5"
HEADER = struct.Struct("<4sIII")
LEGACY_HEADER = struct.Struct("<II")
#: The most buffers one vectored write takes (Linux's IOV_MAX).
_IOV_MAX = 1024


def new_segment_name() -> str:
    """A name unique across restarts and collectors that sorts by creation time."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def frame(body: bytes) -> bytes:
    """``body`` as one record: magic, length and checksums, then the body."""
    head = MAGIC + struct.pack("<II", len(body), zlib.crc32(body))
    return head + struct.pack("<I", zlib.crc32(head)) + body


def fsync_dir(directory: Path) -> None:
    """Make created, renamed or deleted entries of ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> None:
    """Create ``directory`` if needed and make it accessible to its owner only."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIR_MODE)


def quarantine_dir(directory: Path) -> Path:
    """The quarantine folder of the spool in ``directory``, created (owner-only) if needed."""
    folder = directory / QUARANTINE_DIR
    private_dir(folder)
    return folder


def keep_aside(directory: Path, name: str, data: bytes) -> None:
    """Write ``data`` durably as ``name`` in the quarantine folder of the spool in ``directory``."""
    write_durably(quarantine_dir(directory) / name, data)


def create_private(path: Path, flags: int) -> int:
    """Open ``path`` for writing with ``flags`` (creating it), mode 0600 whatever the umask; the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away, or the file existed
    except OSError:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset`` (a short write is continued); the offset after it."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
    return offset


def write_vectored(fd: int, buffers: list[bytes], offset: int) -> None:
    """Write ``buffers`` one after the other from ``offset``, in as few system calls as the kernel allows."""
    views = [memoryview(buffer) for buffer in buffers if buffer]
    first = 0
    while first < len(views):
        written = os.pwritev(fd, views[first : first + _IOV_MAX], offset)
        offset += written
        # A short write is continued from where it stopped.
        while written and first < len(views):
            taken = min(written, len(views[first]))
            views[first] = views[first][taken:]
            written -= taken
            first += not views[first]


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (write, fsync, rename, fsync dir), mode 0600.

    A failed write leaves ``path`` as it was and no partial file behind.
    """
    partial = path.with_name(path.name + ".partial")
    fd = create_private(partial, os.O_TRUNC)
    try:
        try:
            write_all(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    fsync_dir(path.parent)


class SegmentFile:
    """The segment being appended to: what was added to it, and how much of that is durable.

    Records added are written together, with one vectored write, when they are synced.

    After a failed write or fsync, :meth:`rollback` cuts the file back to its durable end, so no
    bytes of a refused request stay between acknowledged records.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.path = directory / (name + SEGMENT_SUFFIX)
        self.size = 0
        self.durable = 0
        self.opened = time.monotonic()
        self._pending: list[bytes] = []
        self._fd = create_private(self.path, os.O_EXCL)
        try:
            fsync_dir(directory)
        except OSError:
            self._discard()
            raise

    @property
    def clean(self) -> bool:
        """Whether everything added is durable."""
        return self.size == self.durable

    def write(self, record: bytes) -> None:
        """Add one framed record (written and made durable by :meth:`sync`)."""
        self._pending.append(record)
        self.size += len(record)

    def sync(self) -> None:
        """Write what was added and make it durable; on failure the file is left unclean (see :meth:`rollback`)."""
        pending, self._pending = self._pending, []
        write_vectored(self._fd, pending, self.durable)
        os.fsync(self._fd)
        self.durable = self.size

    def rollback(self) -> None:
        """Drop what is not durable and cut the file back to its durable end, durably."""
        self._pending = []
        os.ftruncate(self._fd, self.durable)
        os.fsync(self._fd)
        self.size = self.durable

    def close(self) -> None:
        """Close the file; what is durable stays."""
        try:
            os.close(self._fd)
        except OSError as exc:
            # The descriptor is released all the same, and everything written was fsync'd before.
            logger.warning("closing spool segment %s: %s", self.name, exc)

    def _discard(self) -> None:
        os.close(self._fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


def segment_names(directory: Path) -> list[str]:
    """Names of the segments in ``directory``, oldest first."""
    return sorted(p.name.removesuffix(SEGMENT_SUFFIX) for p in directory.glob("*" + SEGMENT_SUFFIX))


def make_private(directory: Path) -> None:
    """Restrict the files an earlier version left in ``directory`` (and its quarantine) to their owner."""
    for entry in (*directory.iterdir(), *_entries(directory / QUARANTINE_DIR)):
        if entry.is_file():
            os.chmod(entry, FILE_MODE)
        elif entry.is_dir():
            os.chmod(entry, DIR_MODE)


def _entries(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []
