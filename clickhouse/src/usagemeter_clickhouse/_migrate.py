"""Numbered, idempotent SQL migrations and the runner that records them.

Migration files live in ``migrations/`` as ``NNNN_name.sql``. Statements are
separated by a semicolon at the end of a line. Placeholders in double braces
are filled from :class:`SchemaOptions` (see ``_render``), which is how one schema
serves a single embedded engine, a sharded cluster and a replicated one.
:func:`migrate` prepares one database on one server; ``_cluster`` runs it on
every host of a sharded cluster.

Data statements (``INSERT``: copies of existing rows into new tables) read and write
one shard's own tables. A sharded cluster's hosts each run the whole file; on a
replicated cluster the DDL runs once through Keeper, so the data statements go to
one replica of every shard (``shards``), whose replicas then fetch the rows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

from clickhouse_connect.driver.client import Client

from usagemeter_clickhouse import tables
from usagemeter_clickhouse._dimensions import write_dimensions
from usagemeter_clickhouse._errors import MigrationError
from usagemeter_clickhouse._render import SchemaOptions, render

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Keeper path of the replicated ledger: one for the whole cluster, so every host shows every record.
_LEDGER_KEEPER_PATH = "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'"


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, options: SchemaOptions, database: str = "usagemeter") -> list[str]:
        """The file's statements with placeholders filled in for ``database``."""
        text = render(self.sql, options, database)
        if "{{" in text:
            raise MigrationError(f"migration {self.version:04d} has an unknown placeholder")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in re.split(r";\s*$", body, flags=re.M) if stmt.strip()]


def available_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("usagemeter_clickhouse.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def ledger_statement(options: SchemaOptions) -> str:
    """The ledger of applied migrations: a table of each host's own, replicated cluster-wide if the schema is."""
    engine = "ReplacingMergeTree(AppliedAt)"
    if options.replicated:
        engine = f"ReplicatedReplacingMergeTree({_LEDGER_KEEPER_PATH}, AppliedAt)"
    return (
        f"CREATE TABLE IF NOT EXISTS {tables.SCHEMA_MIGRATIONS} {options.on_cluster} "
        "(Version UInt32, Name String, Checksum String, AppliedAt DateTime64(3, 'UTC')) "
        f"ENGINE = {engine} ORDER BY Version"
    )


def applied_versions(client: Client) -> set[int]:
    """Versions recorded as applied in the client's database."""
    rows = client.query(f"SELECT DISTINCT Version FROM {tables.SCHEMA_MIGRATIONS}").result_rows
    return {int(row[0]) for row in rows}


def migrate(client: Client, options: SchemaOptions | None = None, shards: Sequence[Client] = ()) -> list[Migration]:
    """Apply pending migrations, record them, then bring TTLs and the dimension allow-list to ``options``.

    Every statement is idempotent, so re-running after a crash between a
    statement and its record is safe. ``shards``: one client per shard of a
    replicated cluster, which its data statements run on. Returns the migrations
    applied now.
    """
    options = options or SchemaOptions()
    client.command(ledger_statement(options))
    done = applied_versions(client)
    applied = [m for m in available_migrations() if m.version not in done]
    for migration in applied:
        apply_migration(client, migration, options, shards)
    apply_retention(client, options)
    write_dimensions(client, options.dimension_attributes)
    return applied


def apply_migration(
    client: Client, migration: Migration, options: SchemaOptions, shards: Sequence[Client] = ()
) -> None:
    """Run one migration's statements (data statements on each of ``shards`` when given) and record it."""
    for statement in migration.statements(options, client.database or "default"):
        for target in shards if shards and _is_data(statement) else (client,):
            try:
                target.command(statement)
            except Exception as exc:
                first_line = statement.splitlines()[0]
                raise MigrationError(f"migration {migration.version:04d} failed at {first_line!r}: {exc}") from exc
    client.insert(
        tables.SCHEMA_MIGRATIONS,
        [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
        column_names=["Version", "Name", "Checksum", "AppliedAt"],
    )
    logger.info("applied migration %04d_%s", migration.version, migration.name)


def _is_data(statement: str) -> bool:
    return statement.startswith("INSERT")


def apply_retention(client: Client, options: SchemaOptions) -> None:
    """Set every table's TTL to the configured retention (idempotent); on a cluster, the shards' own tables."""
    groups = (
        (tables.RAW_TTL, options.raw_retention_days),
        (tables.ROLLUP_TTL, options.rollup_retention_days),
    )
    for table_ttls, days in groups:
        for public, column in table_ttls.items():
            table = public + options.local_suffix
            wanted = f"{column} + toIntervalDay({days})"
            current = _current_ttl(client, table)
            if current is not None and current.replace(" ", "") == wanted.replace(" ", ""):
                continue
            client.command(
                f"ALTER TABLE {table} {options.on_cluster} MODIFY TTL {column} + INTERVAL {days} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )


def _current_ttl(client: Client, table: str) -> str | None:
    result = client.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": table},
    )
    if not result.result_rows:
        return None
    match = re.search(r"\bTTL (.+?)(?: SETTINGS |$)", result.result_rows[0][0])
    return match[1] if match else None
