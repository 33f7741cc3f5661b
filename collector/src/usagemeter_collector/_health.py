"""The collector's health: why it is degraded, as codes anyone may read and as sentences for token holders.

``GET /health`` is asked by readiness probes without a token, so what it answers them is codes and
figures only (``inserts_failing`` with ``AUTHENTICATION_FAILED``, ``unsent_data_old`` with the age):
ClickHouse's own error text can name databases, users, tables and hosts, and is shown only to a
caller with an ingest token (the same check as ``GET /metrics``).
"""

from __future__ import annotations

import errno
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: ClickHouse ends its messages with the error's name, then the server version, and the driver may add the URL:
#: ``… (AUTHENTICATION_FAILED) (version 26.9.1.1) (for url …)``. Only a name in that place is taken, never
#: capitals quoted from the message.
_CLICKHOUSE_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\((?:version|for url)\b.*)?$", re.MULTILINE)
_CLICKHOUSE_CODE = re.compile(r"\bCode: (\d+)\.")
_ERRNO = re.compile(r"\[Errno (\d+)\]")


def error_code(error: BaseException | str) -> str:
    """A name for an error's kind that carries none of its text: ClickHouse's error name (``AUTHENTICATION_FAILED``),
    the errno's name (``ECONNREFUSED``, also inside a driver's message), or the exception's class name."""
    text = str(error)
    named = _CLICKHOUSE_NAME.search(text) if "Code: " in text else None
    if named:
        return named[1]
    if coded := _CLICKHOUSE_CODE.search(text):
        return f"CLICKHOUSE_ERROR_{coded[1]}"
    number = error.errno if isinstance(error, OSError) and error.errno else None
    if number is None and (found := _ERRNO.search(text)):
        number = int(found[1])
    if number is not None:
        return errno.errorcode.get(number, f"ERRNO_{number}")
    return type(error).__name__ if isinstance(error, BaseException) else "UNKNOWN_ERROR"


@dataclass(frozen=True)
class Reason:
    """One reason the collector is degraded: a code with figures anyone may read, and a sentence with the details."""

    code: str
    text: str
    figures: dict[str, Any]
    #: The sentence with error texts replaced by their codes, for readers without a token.
    public_text: str | None = None

    def public(self) -> dict[str, Any]:
        """The code and its figures, without any error text."""
        return {"code": self.code, **self.figures}


@dataclass(frozen=True)
class CollectorStatus:
    """The collector's health: whether its spool can write, whether inserts fail, how old its unsent data is,
    and what it lost or moved aside since it started."""

    spool_writable: bool
    spool_unwritable_since: datetime | None
    spool_last_error: str | None
    spool_write_errors: int
    spool_records_damaged: int
    state_files_quarantined: int
    insert_failing_since: datetime | None = None
    insert_last_error: str | None = None
    oldest_unsent_age_seconds: float = 0.0
    insert_error_code: str | None = None
    #: Unsent data older than this makes the collector degraded (``unsent_data_old``).
    unsent_degraded_seconds: float = math.inf

    @property
    def findings(self) -> list[Reason]:
        """Why the collector is degraded, each as a code and a sentence; empty when it is not."""
        found = [*self._spool_findings(), *self._delivery_findings()]
        if self.spool_records_damaged:
            text = f"{_count(self.spool_records_damaged, 'acknowledged spool record')} lost to damaged bytes"
            found.append(Reason("spool_records_damaged", text, {"count": self.spool_records_damaged}))
        if self.state_files_quarantined:
            text = f"{_count(self.state_files_quarantined, 'damaged spool state file')} moved aside"
            found.append(Reason("state_files_quarantined", text, {"count": self.state_files_quarantined}))
        return found

    @property
    def reasons(self) -> list[str]:
        """Why the collector is degraded, as sentences naming the errors; empty when it is not."""
        return [finding.text for finding in self.findings]

    @property
    def public_reasons(self) -> list[str]:
        """The reasons as sentences anyone may read: errors named by their codes, never by their texts."""
        return [finding.public_text or finding.text for finding in self.findings]

    def _spool_findings(self) -> list[Reason]:
        if self.spool_writable or self.spool_unwritable_since is None:
            return []
        since = self.spool_unwritable_since.isoformat(timespec="seconds")
        text = f"spool cannot write since {since} ({self.spool_last_error}): exports are refused"
        # The spool's error is already an errno name (ENOSPC), so it may be shown to anyone.
        return [Reason("spool_unwritable", text, {"error": self.spool_last_error, "since": since})]

    def _delivery_findings(self) -> list[Reason]:
        found, age = [], self.oldest_unsent_age_seconds
        if self.insert_failing_since is not None:
            since = self.insert_failing_since.isoformat(timespec="seconds")
            sentence = "inserts into ClickHouse failing since {} ({}); keeps spooling, oldest unsent data {:.0f} s old"
            text = sentence.format(since, self.insert_last_error, age)
            public = sentence.format(since, self.insert_error_code, age)
            figures = {"error": self.insert_error_code, "since": since, "oldest_unsent_age_seconds": age}
            found.append(Reason("inserts_failing", text, figures, public))
        if age > self.unsent_degraded_seconds:
            text = f"oldest unsent data {age:.0f} s old (degraded above {self.unsent_degraded_seconds:g} s)"
            found.append(Reason("unsent_data_old", text, {"age_seconds": age}))
        return found


def health_answer(status: CollectorStatus, instance: str | None, detailed: bool) -> dict[str, Any]:
    """What ``GET /health`` answers: status, instance, reason codes and the figures a probe needs; ``detailed``
    (a caller with an ingest token) adds the reasons as sentences and the last errors' texts."""
    findings = status.findings
    answer: dict[str, Any] = {
        "status": "degraded" if findings else "ok",
        "instance": instance,
        "codes": [finding.public() for finding in findings],
        "insert_failing": status.insert_failing_since is not None,
        "insert_error_code": status.insert_error_code if status.insert_failing_since is not None else None,
        "oldest_unsent_age_seconds": status.oldest_unsent_age_seconds,
        "spool_writable": status.spool_writable,
        "detailed": detailed,
    }
    if detailed:
        answer |= {
            "reasons": [finding.text for finding in findings],
            "insert_last_error": status.insert_last_error,
            "spool_last_error": status.spool_last_error,
        }
    return answer


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
