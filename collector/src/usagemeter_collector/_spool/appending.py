"""The spool's segment being appended to, and how a failed write is undone and retried.

A failed write, fsync or segment creation (disk full, quota, I/O error) leaves the segment cut
back to its last durable end, so no bytes of a refused request sit between acknowledged records;
a segment whose sidecar or snapshot could not be written on sealing stays closed but unsealed.
Until both are repaired nothing more is appended; the append thread retries on its own every
:data:`REPAIR_RETRY_SECONDS` and before every write.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from pathlib import Path

from usagemeter_collector._errors import SpoolWriteFailed
from usagemeter_collector._spool.segments import SegmentFile, new_segment_name
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

#: How long after a failed write the append thread tries again to cut back or seal a segment on its own.
REPAIR_RETRY_SECONDS = 1.0


class SegmentAppender:
    """The active segment of a spool; ``seal(name)`` persists a closed segment's state and hands it on."""

    def __init__(self, directory: Path, segment_bytes: int, telemetry: Telemetry, seal: Callable[[str], None]) -> None:
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._telemetry = telemetry
        self._seal = seal
        self.active: SegmentFile | None = None
        self.unsealed: str | None = None
        self._repair_at = 0.0

    def overfills(self, size: int) -> bool:
        """Whether a record of ``size`` bytes belongs in a new segment (a segment is inserted as one batch)."""
        active = self.active
        return active is not None and active.size > 0 and active.size + size > self._segment_bytes

    def write(self, record: bytes) -> None:
        """Append a framed record to the active segment, creating one if there is none."""
        if self.active is None:
            self.active = SegmentFile(self._directory, new_segment_name())
        self.active.write(record)

    def seal_active(self) -> None:
        """Close the active segment and seal it (after any repair)."""
        self.repair()
        active = self.active
        if active is None:
            return
        # Held as unsealed before it stops being active, so the spool never looks empty in between.
        self.unsealed = active.name
        self.active = None
        active.close()
        self._persist(active.name)

    @property
    def held(self) -> int:
        """Segments not handed on yet: the active one, and a closed one not yet sealed."""
        return (self.active is not None) + (self.unsealed is not None)

    @property
    def oldest_held(self) -> str | None:
        """The oldest segment held here with acknowledged records: a closed one not yet sealed, else the active one."""
        active = self.active
        if self.unsealed is not None:
            return self.unsealed
        return active.name if active is not None and active.durable else None

    @property
    def needs_repair(self) -> bool:
        """Whether a failed write left something to finish before the next append."""
        return self.unsealed is not None or (self.active is not None and not self.active.clean)

    def repair_due(self) -> bool:
        """Whether a repair is pending and its retry time has come."""
        return self.needs_repair and time.monotonic() >= self._repair_at

    def repair_wait(self) -> float:
        """Seconds until the next repair attempt."""
        return max(0.0, self._repair_at - time.monotonic())

    def repair(self) -> None:
        """Cut the active segment back to its durable end and seal a closed one; raises OSError while it cannot."""
        if self.active is not None and not self.active.clean:
            self.active.rollback()
        if self.unsealed is not None:
            self._persist(self.unsealed)

    def failed(self, exc: OSError) -> SpoolWriteFailed:
        """Count a failed write, cut the active segment back to its durable end; the error to answer with."""
        reason = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__
        if self._telemetry.spool_writable:
            logger.error(
                "spool %s cannot write (%s); exports are refused as retryable until it can", self._directory, exc
            )
        self._telemetry.spool_write_failed(reason)
        self._repair_at = time.monotonic() + REPAIR_RETRY_SECONDS
        if self.active is not None and not self.active.clean:
            try:
                self.active.rollback()
            except OSError as again:
                logger.error(
                    "cannot cut spool segment %s back to its durable end, will retry: %s", self.active.name, again
                )
        return SpoolWriteFailed(f"spool write failed ({reason})")

    def synced(self) -> None:
        """The active segment was fsync'd: the spool writes again if it could not."""
        if not self._telemetry.spool_writable:
            logger.warning("spool %s writes again", self._directory)
            self._telemetry.spool_write_succeeded()

    def _persist(self, name: str) -> None:
        self.unsealed = name
        self._seal(name)
        self.unsealed = None
