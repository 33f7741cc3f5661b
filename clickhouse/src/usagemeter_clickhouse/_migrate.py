"""Numbered, idempotent SQL migrations and the runner that records them.

Migration files live in ``migrations/`` as ``NNNN_name.sql``. Statements are
separated by a semicolon at the end of a line. Placeholders in double braces
are filled from :class:`SchemaOptions`, which is how one schema serves a single
embedded engine and a replicated cluster.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

from clickhouse_connect.driver.client import Client

from usagemeter_clickhouse import tables
from usagemeter_clickhouse._errors import MigrationError, SchemaError

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SchemaOptions:
    """Deployment choices the schema is rendered with."""

    raw_retention_days: int = 30
    rollup_retention_days: int = 400
    cluster: str | None = None

    def __post_init__(self) -> None:
        for name in ("raw_retention_days", "rollup_retention_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SchemaError(f"{name} must be a positive number of days, got {value!r}")
        if self.cluster is not None and not _CLUSTER_NAME.match(self.cluster):
            raise SchemaError(f"invalid cluster name {self.cluster!r}")

    def placeholders(self) -> dict[str, str]:
        """Values substituted for ``{{NAME}}`` in migration files."""
        return {
            "ON_CLUSTER": f"ON CLUSTER `{self.cluster}`" if self.cluster else "",
            "REPLICATED": "Replicated" if self.cluster else "",
            "RAW_RETENTION_DAYS": str(self.raw_retention_days),
            "ROLLUP_RETENTION_DAYS": str(self.rollup_retention_days),
        }


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, options: SchemaOptions) -> list[str]:
        """The file's statements with placeholders filled in."""
        text = self.sql
        for key, value in options.placeholders().items():
            text = text.replace("{{" + key + "}}", value)
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


def _ensure_ledger(client: Client, options: SchemaOptions) -> None:
    on_cluster = options.placeholders()["ON_CLUSTER"]
    engine = options.placeholders()["REPLICATED"] + "ReplacingMergeTree(AppliedAt)"
    client.command(
        f"CREATE TABLE IF NOT EXISTS {tables.SCHEMA_MIGRATIONS} {on_cluster} "
        "(Version UInt32, Name String, Checksum String, AppliedAt DateTime64(3, 'UTC')) "
        f"ENGINE = {engine} ORDER BY Version"
    )


def applied_versions(client: Client) -> set[int]:
    """Versions recorded as applied in the client's database."""
    rows = client.query(f"SELECT DISTINCT Version FROM {tables.SCHEMA_MIGRATIONS}").result_rows
    return {int(row[0]) for row in rows}


def migrate(client: Client, options: SchemaOptions | None = None) -> list[Migration]:
    """Apply pending migrations, record them, then bring TTLs to ``options``.

    Every statement is idempotent, so re-running after a crash between a
    statement and its record is safe. Returns the migrations applied now.
    """
    options = options or SchemaOptions()
    _ensure_ledger(client, options)
    done = applied_versions(client)
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements(options):
            try:
                client.command(statement)
            except Exception as exc:
                first_line = statement.splitlines()[0]
                raise MigrationError(f"migration {migration.version:04d} failed at {first_line!r}: {exc}") from exc
        client.insert(
            tables.SCHEMA_MIGRATIONS,
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["Version", "Name", "Checksum", "AppliedAt"],
        )
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration)
    apply_retention(client, options)
    return applied


def apply_retention(client: Client, options: SchemaOptions) -> None:
    """Set every table's TTL to the configured retention (idempotent)."""
    on_cluster = options.placeholders()["ON_CLUSTER"]
    groups = (
        (tables.RAW_TTL, options.raw_retention_days),
        (tables.ROLLUP_TTL, options.rollup_retention_days),
    )
    for table_ttls, days in groups:
        for table, column in table_ttls.items():
            wanted = f"{column} + toIntervalDay({days})"
            current = _current_ttl(client, table)
            if current is not None and current.replace(" ", "") == wanted.replace(" ", ""):
                continue
            client.command(
                f"ALTER TABLE {table} {on_cluster} MODIFY TTL {column} + INTERVAL {days} DAY",
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
