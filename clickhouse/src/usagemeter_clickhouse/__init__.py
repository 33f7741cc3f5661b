"""usagemeter's ClickHouse layer: client factory, schema migrations, table names.

Both deployment modes go through this package: a ``chdb://`` URL opens the
embedded engine in-process, an ``http(s)://`` URL a ClickHouse server. Every
other component receives a ``clickhouse_connect`` client from :func:`connect`
and never builds one itself.
"""

from __future__ import annotations

from usagemeter_clickhouse import tables
from usagemeter_clickhouse._client import Client, check_database_name, connect, embedded_url, release_freed_memory
from usagemeter_clickhouse._cluster import Host, cluster_hosts, migrate_deployment
from usagemeter_clickhouse._errors import (
    DataDirectoryInUse,
    MigrationError,
    SchemaError,
    UsagemeterClickHouseError,
)
from usagemeter_clickhouse._migrate import Migration, applied_versions, available_migrations, migrate
from usagemeter_clickhouse._render import SchemaOptions

__all__ = [
    "Client",
    "DataDirectoryInUse",
    "Host",
    "Migration",
    "MigrationError",
    "SchemaError",
    "SchemaOptions",
    "UsagemeterClickHouseError",
    "applied_versions",
    "available_migrations",
    "check_database_name",
    "cluster_hosts",
    "connect",
    "embedded_url",
    "migrate",
    "migrate_deployment",
    "release_freed_memory",
    "tables",
]
