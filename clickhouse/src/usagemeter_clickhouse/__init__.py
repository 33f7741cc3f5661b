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
from usagemeter_clickhouse._dimensions import (
    MAX_DIMENSION_ATTRIBUTES,
    check_dimension_attributes,
    dimension_attributes,
    write_dimensions,
)
from usagemeter_clickhouse._errors import (
    DataDirectoryInUse,
    MigrationError,
    SchemaError,
    UsagemeterClickHouseError,
)
from usagemeter_clickhouse._migrate import Migration, applied_versions, apply_migration, available_migrations, migrate
from usagemeter_clickhouse._render import SchemaOptions

__all__ = [
    "MAX_DIMENSION_ATTRIBUTES",
    "Client",
    "DataDirectoryInUse",
    "Host",
    "Migration",
    "MigrationError",
    "SchemaError",
    "SchemaOptions",
    "UsagemeterClickHouseError",
    "applied_versions",
    "apply_migration",
    "available_migrations",
    "check_database_name",
    "check_dimension_attributes",
    "cluster_hosts",
    "connect",
    "dimension_attributes",
    "embedded_url",
    "migrate",
    "migrate_deployment",
    "release_freed_memory",
    "tables",
    "write_dimensions",
]
