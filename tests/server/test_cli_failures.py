"""ClickHouse failures of `usagemeter migrate|api|collector` end in one line naming the server and its reason, exit 2.

The line names the server by host and port and quotes ClickHouse's own reason with its code
name; it never shows the password. Bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, ProgrammingError

from tests.clickhouse_server import READONLY_PASSWORD, READONLY_USER, ClickHouseServer
from tests.conftest import ServerFactory
from tests.server.processes import server_env, usagemeter
from usagemeter.cli import _one_line_reason
from usagemeter_clickhouse import MigrationError

WRONG_PASSWORD = "not-the-password-4f2a"


def _address(server: ClickHouseServer) -> str:
    return f"ClickHouse at 127.0.0.1:{server.http_port}"


def _reason(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The command's one-line reason: exit code 2, no traceback, the last line of stderr."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"usagemeter {command}: "), result.stderr
    return line


def _command(name: str, tmp_path: Path) -> list[str]:
    return [name] if name == "migrate" else [name, "--data-dir", str(tmp_path / name)]


@pytest.mark.parametrize("command", ["migrate", "api"])
def test_with_the_server_down_the_command_names_it_and_the_refused_connection(
    server_factory: ServerFactory, database: str, tmp_path: Path, command: str
) -> None:
    server = server_factory.server()
    server.stop()
    result = usagemeter(*_command(command, tmp_path), env=server_env(server.url(), database))
    assert _reason(result, command) == (f"usagemeter {command}: cannot reach {_address(server)}: connection refused")


@pytest.mark.parametrize("command", ["migrate", "api"])
def test_a_wrong_password_is_the_servers_authentication_failure_without_the_password(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path, command: str
) -> None:
    env = server_env(clickhouse_server.url(password=WRONG_PASSWORD), database)
    result = usagemeter(*_command(command, tmp_path), env=env)
    line = _reason(result, command)
    assert line.startswith(f"usagemeter {command}: {_address(clickhouse_server)} refused to ")
    assert f"database {database}: usagemeter: Authentication failed" in line
    assert line.endswith("(AUTHENTICATION_FAILED)")
    assert WRONG_PASSWORD not in result.stderr + result.stdout


def test_a_collector_with_a_wrong_password_reports_the_authentication_failure_without_the_password(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    # A collector may refuse to start (one line, exit 2) or start and keep spooling while it
    # retries: either way the operator reads ClickHouse's reason, and never the password.
    # Its own telemetry waits in the spool: a short drain lets it stop at once.
    env = server_env(clickhouse_server.url(password=WRONG_PASSWORD), database, drain_timeout_seconds="1")
    log = tmp_path / "collector.log"
    code, output = _run_until(_command("collector", tmp_path), env, log, "AUTHENTICATION_FAILED")
    assert "AUTHENTICATION_FAILED" in output, output
    assert WRONG_PASSWORD not in output
    if code is not None:
        assert code == 2 and "Traceback" not in output, output
        line = output.strip().splitlines()[-1]
        assert line.startswith(f"usagemeter collector: {_address(clickhouse_server)} refused to open database ")


def test_migrate_as_a_read_only_user_names_the_refusal(clickhouse_server: ClickHouseServer, database: str) -> None:
    env = server_env(clickhouse_server.url(READONLY_USER, READONLY_PASSWORD), database)
    line = _reason(usagemeter("migrate", env=env), "migrate")
    assert line == (
        f"usagemeter migrate: {_address(clickhouse_server)} refused to migrate database {database}: "
        f"{READONLY_USER}: Cannot execute query in readonly mode. (READONLY)"
    )
    assert READONLY_PASSWORD not in line


def test_an_api_on_a_database_that_does_not_exist_names_it(
    clickhouse_server: ClickHouseServer, database: str, tmp_path: Path
) -> None:
    result = usagemeter(*_command("api", tmp_path), env=server_env(clickhouse_server.url(), database))
    assert _reason(result, "api") == (
        f"usagemeter api: {_address(clickhouse_server)} refused to open database {database}: "
        f"Database {database} does not exist. (UNKNOWN_DATABASE)"
    )


def _args(command: str, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    monkeypatch.setenv("USAGEMETER_CLICKHOUSE_URL", f"http://usagemeter:{WRONG_PASSWORD}@db.example:8124")
    monkeypatch.setenv("USAGEMETER_CLICKHOUSE_DATABASE", "metering")
    return argparse.Namespace(command=command, data_dir=None)


def test_a_failed_migration_keeps_its_statement_and_hides_a_password_the_server_quotes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = DatabaseError(
        "Received ClickHouse exception, code: 497, server response: Code: 497. DB::Exception: usagemeter: "
        f"Not enough privileges ('{WRONG_PASSWORD}'). (ACCESS_DENIED) (version 26.9.2.1) (for url http://db.example:8124)",
        code=497,
        name="ACCESS_DENIED",
    )
    failed = MigrationError(f"migration 0003 failed at 'CREATE TABLE IF NOT EXISTS feature_usage_minute': {server}")
    failed.__cause__ = server
    assert _one_line_reason(failed, _args("migrate", monkeypatch)) == (
        "migration 0003 failed at 'CREATE TABLE IF NOT EXISTS feature_usage_minute': ClickHouse at db.example:8124 "
        "refused to migrate database metering: usagemeter: Not enough privileges ('***'). (ACCESS_DENIED)"
    )


@pytest.mark.parametrize(
    "bug", [RuntimeError("boom"), ProgrammingError("bad column list")], ids=["runtime-error", "driver-misuse"]
)
def test_a_bug_is_not_turned_into_a_reason(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    assert _one_line_reason(bug, _args("api", monkeypatch)) is None


def _run_until(
    args: list[str], env: dict[str, str], log: Path, text: str, timeout: float = 60
) -> tuple[int | None, str]:
    """Run ``usagemeter args`` until it exits or its output shows ``text``; returns (exit code or None, output)."""
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "usagemeter", *args], stdout=out, stderr=out, env=env)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline and text not in log.read_text(errors="replace"):
            time.sleep(0.2)
        return process.poll(), log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
