"""Preparing a deployment: one server, every host of a sharded cluster, or a replicated cluster through Keeper.

A sharded cluster without Keeper has no distributed DDL, so each host gets the whole
schema (its local tables, the rollup views over them, the ``Distributed`` tables and the
landing tables) and keeps its own migrations ledger. The hosts are read from the entry
node's ``system.clusters``; each one's HTTP port is asked of the host itself over the
native protocol, with the entry URL's credentials.

A replicated cluster gets its DDL once, through Keeper, from the entry host; its data
statements run on one replica of every shard (each host's ``shard`` macro says which),
and the dimension allow-list, a table of each host's own, is written on every host.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from clickhouse_connect.driver.client import Client

from usagemeter_clickhouse._client import connect
from usagemeter_clickhouse._dimensions import write_dimensions
from usagemeter_clickhouse._errors import MigrationError, SchemaError
from usagemeter_clickhouse._migrate import Migration, migrate
from usagemeter_clickhouse._render import SchemaOptions

__all__ = ["Host", "cluster_hosts", "migrate_deployment"]

logger = logging.getLogger(__name__)

_MEMBERS_SQL = (
    "SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = {cluster:String} "
    "ORDER BY shard_num, replica_num"
)


@dataclass(frozen=True)
class Host:
    """One server of a cluster: how messages name it, and the URL migrate reaches it at."""

    name: str
    url: str


def migrate_deployment(
    url: str, database: str, options: SchemaOptions, host_urls: Sequence[str] = ()
) -> dict[str, list[Migration]]:
    """Create ``database`` and apply pending migrations wherever ``options`` say the schema lives.

    Returns the migrations applied now, per host name. A host that cannot be reached
    fails the whole run (a MigrationError naming it) before any host is changed.
    """
    if options.cluster is not None and urlsplit(url).scheme not in ("http", "https"):
        raise SchemaError("a ClickHouse cluster needs a server URL (http(s)://...), not the embedded engine")
    if options.cluster is None:
        # One server: its errors already name it.
        return {_display(url): _migrate_database(url, database, options)}
    hosts = [_with_credentials(u, url) for u in host_urls] if host_urls else cluster_hosts(url, options.cluster)
    for host in hosts:
        _check_reachable(host)
    if options.replicated:
        _create_database_on_cluster(url, database, options)
        return {_display(url): _migrate_replicated(url, database, options, hosts)}
    return {host.name: _migrate_one(host, database, options) for host in hosts}


def cluster_hosts(url: str, cluster: str) -> list[Host]:
    """Every host of ``cluster`` as the server at ``url`` knows it, with its HTTP URL."""
    parts = urlsplit(url)
    user, password = unquote(parts.username or "default"), unquote(parts.password or "")
    entry = connect(url, "system")
    try:
        members = entry.query(_MEMBERS_SQL, parameters={"cluster": cluster}).result_rows
        if not members:
            raise SchemaError(f"cluster {cluster!r} is not in the remote_servers of {_display(url)}")
        hosts = []
        for shard, address, tcp_port in members:
            name = f"{_netloc(address, tcp_port)} (shard {shard}) of cluster {cluster!r}"
            port = _http_port(entry, name, _netloc(address, tcp_port), user, password, parts.scheme == "https")
            hosts.append(Host(name, _host_url(parts.scheme, user, password, address, port)))
        return hosts
    finally:
        entry.close()


def _http_port(entry: Client, name: str, netloc: str, user: str, password: str, tls: bool) -> int:
    """The HTTP(S) port of the host at native ``netloc``, asked of the host itself through ``remote()``."""
    remote = f"remote({_quote(netloc)}, system.one, {_quote(user)}, {_quote(password)})"
    setting = _quote("https_port" if tls else "http_port")
    try:
        return int(entry.query(f"SELECT getServerPort({setting}) FROM {remote}").result_rows[0][0])
    except Exception as exc:
        raise MigrationError(f"cannot reach ClickHouse host {name}: {exc}") from exc


def _check_reachable(host: Host) -> None:
    try:
        connect(host.url, "system").close()
    except Exception as exc:
        raise MigrationError(f"cannot reach ClickHouse host {host.name}: {exc}") from exc


def _migrate_database(url: str, database: str, options: SchemaOptions) -> list[Migration]:
    client = connect(url, database, create_database=True)
    try:
        return migrate(client, options)
    finally:
        client.close()


def _migrate_replicated(url: str, database: str, options: SchemaOptions, hosts: Sequence[Host]) -> list[Migration]:
    """Migrate through the entry host, with data statements on one replica per shard; then every host's allow-list."""
    clients = {host.name: connect(host.url, database) for host in hosts}
    entry = connect(url, database)
    try:
        shards = one_per_shard([(clients[host.name], _shard_of(clients[host.name], host)) for host in hosts])
        applied = migrate(entry, options, shards)
        for host in hosts:
            write_dimensions(clients[host.name], options.dimension_attributes)
        return applied
    finally:
        entry.close()
        for client in clients.values():
            client.close()


def one_per_shard(members: Sequence[tuple[Client, str]]) -> list[Client]:
    """The first client listed of each shard, in the order the shards first appear."""
    chosen: dict[str, Client] = {}
    for client, shard in members:
        chosen.setdefault(shard, client)
    return list(chosen.values())


def _shard_of(client: Client, host: Host) -> str:
    try:
        return str(client.query("SELECT getMacro('shard')").result_rows[0][0])
    except Exception as exc:
        raise MigrationError(f"cannot read the shard macro of ClickHouse host {host.name}: {exc}") from exc


def _migrate_one(host: Host, database: str, options: SchemaOptions) -> list[Migration]:
    """Migrate one host of a sharded cluster; a failure names the host among the others."""
    try:
        applied = _migrate_database(host.url, database, options)
    except MigrationError as exc:
        raise MigrationError(f"on {host.name}: {exc}") from exc
    except Exception as exc:
        raise MigrationError(f"migrating {host.name} failed: {exc}") from exc
    logger.info("%s: %d migrations applied, schema current", host.name, len(applied))
    return applied


def _create_database_on_cluster(url: str, database: str, options: SchemaOptions) -> None:
    bootstrap = connect(url, "default")
    try:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}` {options.on_cluster}")
    finally:
        bootstrap.close()


def _with_credentials(host_url: str, entry_url: str) -> Host:
    """``host_url`` with the entry URL's user and password unless it names its own."""
    parts, entry = urlsplit(host_url), urlsplit(entry_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SchemaError(f"invalid ClickHouse host URL {host_url!r}: use http(s)://host:port")
    if parts.username is None and entry.username is not None:
        credentials = entry.netloc.rpartition("@")[0]
        host_url = parts._replace(netloc=f"{credentials}@{parts.netloc}").geturl()
    return Host(_display(host_url), host_url)


def _host_url(scheme: str, user: str, password: str, address: str, port: int) -> str:
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{_netloc(address, port)}"


def _netloc(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _display(url: str) -> str:
    """``url`` without its credentials, for messages."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
