"""The Dockerfile installs exactly the repository's distributions, pinned, as a non-root user."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.deploy.compose_file import REPO, interpolate, raw_compose, read_env_file

DOCKERFILES = sorted(p for p in (REPO / "docker").rglob("*") if p.is_file() and "Dockerfile" in p.name)
DOCKERFILES = [p for p in DOCKERFILES if not p.name.endswith(".dockerignore")]
PINNED_PYTHON = re.compile(r"^python:\d+\.\d+\.\d+-slim(-[a-z]+)?$")


def _distributions() -> set[str]:
    """Directories holding a pyproject.toml, as ``./dir`` (the root as ``.``)."""
    found = {"."} if (REPO / "pyproject.toml").exists() else set()
    found |= {f"./{p.parent.name}" for p in REPO.glob("*/pyproject.toml")}
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _pip_install_paths(arguments: str) -> list[str]:
    paths = []
    for command in re.split(r"&&|;", arguments):
        words = shlex.split(command)
        if len(words) >= 2 and words[0].endswith("pip") and words[1] == "install":
            paths += [w for w in words[2:] if w == "." or w.startswith("./")]
    return paths


def test_there_is_a_dockerfile():
    assert DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_pip_installs_exactly_the_distributions(path: Path):
    instructions = _instructions(path)
    installed = [p for verb, args in instructions if verb == "RUN" for p in _pip_install_paths(args)]
    assert sorted(installed) == sorted(_distributions())
    copied = {shlex.split(args)[0] for verb, args in instructions if verb == "COPY" and "--from" not in args}
    for distribution in _distributions() - {"."}:
        assert distribution.removeprefix("./") in copied, f"{distribution} is installed but not copied"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_pinned_and_runs_as_non_root(path: Path):
    instructions = _instructions(path)
    args = dict(a.split("=", 1) for verb, a in instructions if verb == "ARG" and "=" in a)
    for verb, arguments in instructions:
        if verb == "FROM":
            image = arguments.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image)
            stages = {a.split()[-1] for v, a in instructions if v == "FROM" and " AS " in a.upper()}
            assert image in stages or PINNED_PYTHON.match(image), image
    users = [a for verb, a in instructions if verb == "USER"]
    assert users and all(not u.startswith(("root", "0")) for u in users)


def test_compose_builds_with_a_pinned_python(tmp_path: Path):
    env = {k: v or "x" for k, v in read_env_file(REPO / ".env.example").items()}
    services = interpolate(raw_compose(), env)["services"]
    built = {n: s["build"] for n, s in services.items() if "build" in s}
    assert {"migrate", "collector", "api", "demo"} <= set(built)
    targets = {t for v, a in _instructions(REPO / "docker" / "Dockerfile") if v == "FROM" for t in [a.split()[-1]]}
    for name, build in built.items():
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
        assert build["target"] in targets, name
        assert PINNED_PYTHON.match(build["args"]["PYTHON_IMAGE"]), build["args"]
