"""The ``USAGEMETER_*`` variables the code reads, found in its source at test time.

Settings are pydantic-settings classes (``BaseSettings`` subclasses with an
``env_prefix``); a few values may also be read with ``os.environ``/``os.getenv``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

SETTINGS_BASE = "BaseSettings"


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _string_constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _keyword(call: ast.Call, name: str, constants: dict[str, str]) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            if isinstance(value, ast.Name):
                return constants.get(value.id)
    return None


def _env_prefix(cls: ast.ClassDef, constants: dict[str, str]) -> str | None:
    for node in cls.body:
        targets: list[ast.expr]
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets) and isinstance(value, ast.Call):
            return _keyword(value, "env_prefix", constants)
    return None


def _fields(cls: ast.ClassDef, constants: dict[str, str]) -> Iterable[tuple[str, str | None]]:
    """(field name, alias) for each annotated field of the class."""
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        if node.target.id == "model_config" or "ClassVar" in ast.unparse(node.annotation):
            continue
        alias = None
        if isinstance(node.value, ast.Call) and _name(node.value.func) == "Field":
            alias = _keyword(node.value, "validation_alias", constants) or _keyword(node.value, "alias", constants)
        yield node.target.id, alias


def _environ_reads(tree: ast.Module) -> Iterable[str]:
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield key.value


def environment_variables(roots: Iterable[Path], prefix: str = "USAGEMETER_") -> set[str]:
    """Every ``prefix`` variable a settings class or an environ read under ``roots`` takes."""
    classes: list[tuple[ast.ClassDef, dict[str, str]]] = []
    names: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            constants = _string_constants(tree)
            classes += [(n, constants) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
            names |= {v for v in _environ_reads(tree) if v.startswith(prefix)}
    settings = {SETTINGS_BASE}
    # Subclasses of settings classes are settings classes too, wherever they are defined.
    while True:
        more = {c.name for c, _ in classes if any(_name(b) in settings for b in c.bases)} - settings
        if not more:
            break
        settings |= more
    by_name = {c.name: (c, k) for c, k in classes}

    def prefix_of(cls: ast.ClassDef, constants: dict[str, str]) -> str | None:
        own = _env_prefix(cls, constants)
        if own is not None:
            return own
        parents = [by_name[n] for n in map(_name, cls.bases) if n in by_name and n in settings]
        return next((p for p in (prefix_of(*parent) for parent in parents) if p is not None), None)

    for cls, constants in classes:
        if cls.name not in settings or cls.name == SETTINGS_BASE:
            continue
        env_prefix = prefix_of(cls, constants)
        for field, alias in _fields(cls, constants):
            if alias:
                names.add(alias.upper())
            elif env_prefix is not None:
                names.add((env_prefix + field).upper())
    return {n for n in names if n.startswith(prefix)}
