"""Reading docker-compose.yml the way Compose does: YAML, merge keys, then interpolation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ is a literal $.
_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class InterpolationError(ValueError):
    """A required variable is unset or empty (Compose refuses to start)."""


def raw_compose() -> dict[str, Any]:
    """The file as YAML, merge keys resolved, before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def references(text: str) -> list[tuple[str, str | None, str | None]]:
    """(variable, operator, argument) for each interpolation in ``text``."""
    found = []
    for match in _REFERENCE.finditer(text):
        name = match["braced"] or match["bare"]
        if name:
            found.append((name, match["op"], match["arg"]))
    return found


def interpolate_text(text: str, env: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["braced"] or match["bare"], match["op"], match["arg"] or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else str(current)
        if op in (":?", "?") and (current is None or (op == ":?" and current == "")):
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        return "" if current is None else str(current)

    return _REFERENCE.sub(value, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every string interpolated from ``env``."""
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def environment_of(service: Mapping[str, Any]) -> dict[str, Any]:
    """A service's ``environment`` as a mapping, whether written as a list or a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)
