"""Errors the collector answers senders with."""

from __future__ import annotations


class CollectorError(Exception):
    """Base class of the collector's errors."""


class PayloadError(CollectorError):
    """An export request that cannot be read; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StorageUnavailable(CollectorError):
    """The rows of a request were not committed to ClickHouse; the sender should retry."""


class SpoolFull(StorageUnavailable):
    """The spool reached its size limit; the sender should retry after a while."""


class SpoolWriteFailed(StorageUnavailable):
    """Writing the request to the spool failed (disk full, I/O error); the sender should retry after a while."""


class Unauthenticated(CollectorError):
    """The request lacks a valid ingest bearer token."""
