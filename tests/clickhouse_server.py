"""A real ClickHouse server process on loopback, from the chDB wheel's ClickHouse 26.9 ``LocalServer``.

``LocalServer`` reads ``./config.xml`` from its working directory and opens the HTTP and
native-TCP listeners while one long, nearly idle query runs; stopping that query shuts the
server down cleanly. Each :class:`ClickHouseServer` is one such process with a directory of
its own; two of them with the same ``remote_servers`` form a sharded cluster. Run as a
script (``python -m tests.clickhouse_server DIR``) it serves the server living in DIR.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

#: The user the services log in as, and the read-only user of dashboards.
SERVICE_USER = "usagemeter"
SERVICE_PASSWORD = "service-password"
READONLY_USER = "reader"
READONLY_PASSWORD = "reader-password"

# The long query that keeps the listeners open; its text is how stop() finds it.
_HOLD = (
    "SELECT count() FROM numbers(1000000000000) WHERE sleepEachRow(1) = 0 /* usagemeter-test-server */ "
    "SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0, max_execution_time = 0"
)
_SERVE = f"SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; {_HOLD}"

# chDB's own session logs in as a passwordless `default` from loopback: it may only
# start the listeners, hold them and stop its query. The services have a real user.
_USERS = f"""<clickhouse>
  <profiles><default>{{profile}}</default><readonly><readonly>2</readonly></readonly></profiles>
  <quotas><default/></quotas>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
      <grants>
        <query>GRANT SYSTEM LISTEN, KILL QUERY, CREATE TEMPORARY TABLE ON *.*</query>
        <query>GRANT SELECT ON system.*</query>
      </grants>
    </default>
    <{SERVICE_USER}>
      <password>{SERVICE_PASSWORD}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
    </{SERVICE_USER}>
    <{READONLY_USER}>
      <password>{READONLY_PASSWORD}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>readonly</profile><quota>default</quota>
    </{READONLY_USER}>
  </users>
</clickhouse>
"""


@dataclass
class ClickHouseServer:
    """One ClickHouse server process kept in ``directory``, listening on 127.0.0.1."""

    directory: Path
    http_port: int
    tcp_port: int
    remote_servers: str = ""
    macros: dict[str, str] = field(default_factory=dict)
    #: Settings of the default profile, which every user but the read-only one has (as an operator's users.xml sets).
    profile: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = SERVICE_USER, password: str = SERVICE_PASSWORD) -> str:
        """The ``http://`` URL the product connects with."""
        return f"http://{quote(user)}:{quote(password)}@127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start the process (again) and wait until it answers queries."""
        self._write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.clickhouse_server", str(self.directory)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ClickHouse server exited: {self.log.read_text(errors='replace')[-2000:]}")
            if self.ping():
                return
            time.sleep(0.1)
        raise RuntimeError(f"ClickHouse server not ready in {timeout} s")

    def ping(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, sql: str) -> str:
        """Run ``sql`` as the service user and return the TabSeparated answer."""
        response = httpx.post(
            f"http://127.0.0.1:{self.http_port}/",
            content=sql.encode(),
            auth=(SERVICE_USER, SERVICE_PASSWORD),
            timeout=60,
        )
        response.raise_for_status()
        return response.text

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly: end the query holding the listeners, then wait for the process."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            httpx.post(
                f"http://127.0.0.1:{self.http_port}/",
                content=b"KILL QUERY WHERE query LIKE '%usagemeter-test-server%' AND query NOT LIKE 'KILL%'",
                timeout=5,
            )
            self.process.wait(timeout)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        macros = "".join(f"<{k}>{v}</{k}>" for k, v in self.macros.items())
        (self.directory / "config.xml").write_text(
            "<clickhouse>\n"
            "  <listen_host>127.0.0.1</listen_host>\n"
            f"  <http_port>{self.http_port}</http_port>\n"
            f"  <tcp_port>{self.tcp_port}</tcp_port>\n"
            "  <users_config>users.xml</users_config>\n"
            f"  <remote_servers>{self.remote_servers}</remote_servers>\n"
            f"  <macros>{macros}</macros>\n"
            "</clickhouse>\n"
        )
        profile = "".join(f"<{k}>{v}</{k}>" for k, v in self.profile.items())
        (self.directory / "users.xml").write_text(_USERS.replace("{profile}", profile))
        # As the compose stack mounts it into format_schema_path; this server looks in its own directory instead.
        # (Imported here: the server process itself has no use for the collector.)
        from usagemeter_collector._drain.landing import SCHEMA_FILE, bundled_schema_path

        shutil.copy(bundled_schema_path(), self.directory / SCHEMA_FILE)


def cluster_config(name: str, servers: list[ClickHouseServer]) -> str:
    """``<remote_servers>`` content of a cluster with one shard (of one replica) per server."""
    shards = "".join(
        "<shard><replica>"
        f"<host>127.0.0.1</host><port>{server.tcp_port}</port>"
        f"<user>{SERVICE_USER}</user><password>{SERVICE_PASSWORD}</password>"
        "</replica></shard>"
        for server in servers
    )
    return f"<{name}>{shards}</{name}>"


def _serve(directory: Path) -> None:
    """Run the server of ``directory`` until its holding query is stopped."""
    import chdb  # noqa: F401  (loads the engine before the working directory changes)
    from chdb import _chdb

    os.chdir(directory)
    try:
        _chdb.query(_SERVE, "TabSeparated", path=str(directory / "data"))
    except Exception as exc:  # the holding query ends as killed: that is the clean stop
        print(f"server stopped: {exc}", file=sys.stderr)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]).resolve())
