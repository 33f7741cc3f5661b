"""The compose stack keeps what collectors acknowledged across recreates and feeds ClickHouse their format schema."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.deploy.compose_file import REPO, environment_of, interpolate, raw_compose, read_env_file
from usagemeter_collector import CollectorSettings
from usagemeter_collector._collector import SHUTDOWN_GRACE_SECONDS
from usagemeter_collector._drain.landing import SCHEMA_FILE, bundled_schema_path

DOCKERFILE = REPO / "docker" / "Dockerfile"
CLICKHOUSE_CONFIG = REPO / "docker" / "clickhouse" / "config.d" / "usagemeter.xml"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    env = {k: v or f"example-{k.lower()}" for k, v in read_env_file(REPO / ".env.example").items()}
    return interpolate(raw_compose(), env)


@pytest.fixture(scope="module")
def collectors(compose: dict[str, Any]) -> dict[str, Any]:
    found = {n: s for n, s in compose["services"].items() if (s.get("command") or [None])[0] == "collector"}
    assert found, "the stack runs no collector"
    return found


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of each volume in short syntax."""
    return [tuple(v.split(":")[:2]) for v in service.get("volumes", [])]  # type: ignore[misc]


def _named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume."""
    return {target: source for source, target in _mounts(service) if not source.startswith((".", "/", "~"))}


def _spool_dir(service: dict[str, Any]) -> PurePosixPath:
    """Where the collector's spool is, as CollectorSettings resolves the service's environment."""
    env = environment_of(service)
    assert "USAGEMETER_SPOOL_DIR" in env or "USAGEMETER_DATA_DIR" in env, "the spool's place is left implicit"
    settings = CollectorSettings(
        data_dir=Path(env.get("USAGEMETER_DATA_DIR", "/nonexistent")),
        spool_dir=Path(env["USAGEMETER_SPOOL_DIR"]) if "USAGEMETER_SPOOL_DIR" in env else None,
    )
    return PurePosixPath(settings.resolved_spool_dir().as_posix())


def _volume_of(service: dict[str, Any], path: PurePosixPath) -> tuple[str, str] | None:
    """(named volume, container path) holding ``path``, the deepest mount first."""
    for target, volume in sorted(_named_mounts(service).items(), key=lambda item: -len(item[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return volume, target
    return None


def test_every_collector_keeps_its_spool_on_a_persistent_volume_of_its_own(
    compose: dict[str, Any], collectors: dict[str, Any]
):
    owners: dict[str, list[str]] = {}
    for name, service in compose["services"].items():
        for volume in _named_mounts(service).values():
            owners.setdefault(volume, []).append(name)
    for name, service in collectors.items():
        found = _volume_of(service, _spool_dir(service))
        assert found, f"{name}'s spool {_spool_dir(service)} is in the container's filesystem"
        volume, _ = found
        assert volume in compose["volumes"], f"{name}: {volume} is not a declared named volume"
        declared = compose["volumes"][volume] or {}
        assert declared.get("driver_opts", {}).get("type") != "tmpfs", f"{volume} does not persist"
        assert owners[volume] == [name], f"spool volume {volume} is shared by {owners[volume]}"
        # Replicas of one service would share its volume, hence its spool.
        assert (service.get("deploy") or {}).get("replicas", 1) == 1 and "scale" not in service, name


def _seconds(duration: str) -> float:
    parts = _DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def test_collectors_are_given_longer_to_stop_than_they_drain(collectors: dict[str, Any]):
    for name, service in collectors.items():
        drain = float(environment_of(service)["USAGEMETER_DRAIN_TIMEOUT_SECONDS"])
        grace = _seconds(service["stop_grace_period"])
        # The receivers' grace for requests in flight comes first, and a few seconds for the exit.
        needed = SHUTDOWN_GRACE_SECONDS + drain + 5
        assert grace >= needed, f"{name}: stop_grace_period {grace} s against {needed} s to stop and drain"


def _dockerfile_lines() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _shell_commands() -> list[list[str]]:
    runs = [line[4:] for line in _dockerfile_lines() if line.startswith("RUN ")]
    return [shlex.split(command) for run in runs for command in re.split(r"&&|;", run) if command.strip()]


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def _paths_owned_by_the_user() -> set[str]:
    """Directories the image creates for its unprivileged user (the USER it runs as), by uid or name."""
    (uid,) = {line.split()[1].split(":")[0] for line in _dockerfile_lines() if line.startswith("USER ")}
    commands = _shell_commands()
    users = [words for words in commands if words[:1] == ["useradd"] and _option(words, "--uid") == uid]
    owners = {uid} | {words[-1] for words in users}
    owned = {_option(words, "--home-dir") or "" for words in users if "--create-home" in words}
    for words in commands:
        if words[:2] == ["install", "-d"] and _option(words, "-o") in owners:
            owned |= {w for w in words[2:] if w.startswith("/")}
    return owned - {""}


def test_the_image_gives_the_spool_volume_to_the_user_it_runs_as(collectors: dict[str, Any]):
    owned = _paths_owned_by_the_user()
    for name, service in collectors.items():
        found = _volume_of(service, _spool_dir(service))
        assert found
        # A fresh named volume takes the owner and mode of the image's directory it is mounted on.
        assert found[1] in owned, f"{name}: {found[1]} is not created for the image's user ({sorted(owned)})"


def test_clickhouse_reads_the_collectors_shipped_format_schema_by_name(
    compose: dict[str, Any], collectors: dict[str, Any]
):
    schema_path = PurePosixPath(ET.parse(CLICKHOUSE_CONFIG).getroot().findtext("format_schema_path", ""))
    mounts = {PurePosixPath(target): source for source, target in _mounts(compose["services"]["clickhouse"])}
    source = mounts.get(schema_path / SCHEMA_FILE)
    assert source is not None, f"nothing is mounted at {schema_path / SCHEMA_FILE}"
    shipped = bundled_schema_path()
    assert (REPO / source).resolve() == shipped or (REPO / source).read_bytes() == shipped.read_bytes()
    for name, service in collectors.items():
        schema = environment_of(service).get("USAGEMETER_CLICKHOUSE_FORMAT_SCHEMA")
        # clickhouse-server refuses absolute paths in format_schema: a name in format_schema_path.
        if schema is not None:
            assert schema == SCHEMA_FILE, f"{name} sets USAGEMETER_CLICKHOUSE_FORMAT_SCHEMA={schema!r}"
