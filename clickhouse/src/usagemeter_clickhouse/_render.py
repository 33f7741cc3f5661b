"""How one schema is rendered for a single server, a sharded cluster and a replicated cluster.

Migration files name placeholders in double braces:

``{{LOCAL}}``
    after the name of a table that holds data: ``_local`` on a cluster, where the
    public name is a ``Distributed`` table over the shards' local tables; nothing on
    a single server. Views that roll up raw rows read and write ``{{LOCAL}}`` tables,
    so each shard rolls up its own rows.
``{{DISTRIBUTED name BY key}}``
    a statement of its own after ``name{{LOCAL}}`` is created: on a cluster the
    ``Distributed`` table ``name`` over ``name_local``, sharded by ``key`` (a
    deterministic expression, so a retried block lands on the same shards); nothing
    on a single server.
``{{ON_CLUSTER}}``
    ``ON CLUSTER`` on a replicated cluster, whose DDL runs once through Keeper. A
    sharded cluster without Keeper gets each statement on each host instead.
``{{REPLICATED}}``
    before a ``*MergeTree`` engine: on a replicated cluster the ``Replicated`` engine
    with its Keeper path (``{shard}``/``{replica}`` macros) and the engine's arguments.
``{{RAW_RETENTION_DAYS}}``, ``{{ROLLUP_RETENTION_DAYS}}``
    the retention settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from usagemeter_clickhouse._dimensions import check_dimension_attributes
from usagemeter_clickhouse._errors import SchemaError

__all__ = ["LOCAL_SUFFIX", "SchemaOptions", "render"]

#: Suffix of the shards' own tables under a ``Distributed`` table of the public name.
LOCAL_SUFFIX = "_local"
#: Keeper path of a replicated table: one per shard, database and table.
KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DISTRIBUTED = re.compile(r"\{\{DISTRIBUTED (\w+) BY (.+?)\}\}")
_REPLICATED = re.compile(r"\{\{REPLICATED\}\}(\w*MergeTree)(?:\(([^()]*)\))?")


@dataclass(frozen=True)
class SchemaOptions:
    """Deployment choices the schema is rendered with.

    ``cluster`` names the cluster (in the servers' ``remote_servers``) whose shards hold
    the data; ``replicated`` adds replication through Keeper to it. ``dimension_attributes``
    is the allow-list migrate writes into ``usage_dimensions`` on every host.
    """

    raw_retention_days: int = 30
    rollup_retention_days: int = 400
    cluster: str | None = None
    replicated: bool = False
    dimension_attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("raw_retention_days", "rollup_retention_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SchemaError(f"{name} must be a positive number of days, got {value!r}")
        if self.cluster is not None and not _CLUSTER_NAME.match(self.cluster):
            raise SchemaError(f"invalid cluster name {self.cluster!r}")
        if self.replicated and self.cluster is None:
            raise SchemaError("a replicated schema needs the cluster it is replicated in")
        check_dimension_attributes(self.dimension_attributes)

    @property
    def local_suffix(self) -> str:
        """What data tables' names end with: ``_local`` on a cluster."""
        return LOCAL_SUFFIX if self.cluster else ""

    @property
    def on_cluster(self) -> str:
        """The ``ON CLUSTER`` clause of every DDL statement (replicated clusters only)."""
        return f"ON CLUSTER `{self.cluster}`" if self.replicated else ""

    def placeholders(self) -> dict[str, str]:
        """Values substituted for the plain ``{{NAME}}`` placeholders."""
        return {
            "ON_CLUSTER": self.on_cluster,
            "LOCAL": self.local_suffix,
            "RAW_RETENTION_DAYS": str(self.raw_retention_days),
            "ROLLUP_RETENTION_DAYS": str(self.rollup_retention_days),
        }


def render(sql: str, options: SchemaOptions, database: str) -> str:
    """``sql`` with every placeholder filled for ``options`` in ``database``."""
    text = _DISTRIBUTED.sub(lambda m: _distributed(m[1], m[2], options, database), sql)
    text = _REPLICATED.sub(lambda m: _engine(m[1], m[2], options), text)
    for key, value in options.placeholders().items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _distributed(name: str, key: str, options: SchemaOptions, database: str) -> str:
    if not options.cluster:
        return ""
    local = name + LOCAL_SUFFIX
    return (
        f"CREATE TABLE IF NOT EXISTS {name} {options.on_cluster} AS `{database}`.{local} "
        f"ENGINE = Distributed('{options.cluster}', '{database}', '{local}', {key})"
    )


def _engine(engine: str, arguments: str | None, options: SchemaOptions) -> str:
    if not options.replicated:
        return engine if arguments is None else f"{engine}({arguments})"
    return replicated_engine(engine, arguments)


def replicated_engine(engine: str, arguments: str | None) -> str:
    """``Replicated<engine>`` with its Keeper path and replica name before the engine's own arguments."""
    keeper = [f"'{KEEPER_PATH}'", "'{replica}'"]
    return f"Replicated{engine}({', '.join(keeper + ([arguments] if arguments else []))})"
