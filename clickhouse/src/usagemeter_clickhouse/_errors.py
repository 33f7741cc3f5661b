"""The package's small error hierarchy."""

from __future__ import annotations


class UsagemeterClickHouseError(Exception):
    """Base class for errors raised by usagemeter_clickhouse."""


class SchemaError(UsagemeterClickHouseError):
    """A URL, database name or schema option is not usable."""


class MigrationError(UsagemeterClickHouseError):
    """A migration could not be applied; the message names the version and statement."""


class DataDirectoryInUse(UsagemeterClickHouseError):
    """The embedded engine's data directory is held by another process."""
