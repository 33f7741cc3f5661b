"""One-line reasons for ClickHouse failures of the command: what failed, where, and the server's own words.

clickhouse-connect reports an unreachable server as an ``OperationalError`` whose text is a
urllib3 retry chain, and a refusal (authentication, read-only user, unknown database, refused
DDL) as a ``DatabaseError`` carrying ClickHouse's message. An operator needs one line of
each, naming the server by host and port: never the URL, which holds the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    scrub_error_details,
)

# Raised for misuse of the driver by our own code: bugs, shown with their traceback.
_BUGS = (ProgrammingError, DataError, NotSupportedError, IntegrityError)
_OS_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_SERVER_TEXT = re.compile(r"DB::Exception: (.*)")
_URL_TRAILER = re.compile(r"\s*\(for url [^)]*\)\s*$")


@dataclass(frozen=True)
class Target:
    """The ClickHouse a command talks to, as reasons may show it."""

    address: str
    database: str
    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, url: str, database: str) -> Target:
        """The target of ``url`` (``http(s)://user:password@host:port`` or ``chdb://dir``) and ``database``."""
        parts = urlsplit(url)
        if parts.scheme == "chdb":
            return cls(f"the embedded engine in {unquote(parts.netloc + parts.path)}", database)
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        password = unquote(parts.password or "")
        return cls(f"ClickHouse at {parts.hostname or 'localhost'}:{port}", database, (password,) if password else ())

    def scrub(self, text: str) -> str:
        """``text`` without any secret of the target (a server may quote what it was sent)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def clickhouse_reason(exc: BaseException, target: Target, action: str) -> str | None:
    """The one-line reason for a failure caused by ClickHouse while doing ``action``, or None if it is not one.

    ``exc`` may wrap the driver's error (a failed migration naming its statement, a schema
    check): its own words are kept and the driver's text replaced by the short reason.
    """
    cause = _driver_error(exc)
    if cause is None:
        return None
    if _answered(cause):
        short = f"{target.address} refused to {action} {target.database}: {_server_reason(cause)}"
    else:
        short = f"cannot reach {target.address}: {_transport_reason(cause)}"
    text = str(exc).replace(str(cause), short) if cause is not exc else short
    return target.scrub(text.strip().splitlines()[0])


def _driver_error(exc: BaseException) -> DatabaseError | None:
    """The driver's error in ``exc``'s chain of causes, if it reports the server and not a bug."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DatabaseError):
            return None if isinstance(seen, _BUGS) else seen
        seen = seen.__cause__
    return None


def _answered(error: DatabaseError) -> bool:
    """Whether the server answered (and refused), rather than not being reached at all."""
    return error.code is not None or "DB::Exception" in str(error) or not isinstance(error, OperationalError)


def _server_reason(error: DatabaseError) -> str:
    """The first line of ClickHouse's own message, with its code name, without the version and URL trailers."""
    text = str(error)
    match = _SERVER_TEXT.search(text)
    reason = match[1] if match else text.strip().splitlines()[0]
    reason = scrub_error_details(_URL_TRAILER.sub("", scrub_error_details(reason)))
    if error.name and f"({error.name})" not in reason:
        reason = f"{reason} ({error.name})"
    return reason


def _transport_reason(error: DatabaseError) -> str:
    """Why the server was not reached: the system's reason (e.g. connection refused), else the driver's first line."""
    text = str(error)
    match = _OS_REASON.search(text)
    if match:
        return match[1].strip().lower()
    if "timed out" in text.lower():
        return "timed out"
    return text.strip().splitlines()[0]
