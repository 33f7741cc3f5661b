"""The code's map holds: each package imports only what sits below it.

Read from the source with ``ast`` (nothing is imported), so a new import that crosses a wall fails
here with the file and the import named, before it shows as an arrow running the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "collector/src/usagemeter_collector"
API = ROOT / "api/src/usagemeter_api"

#: (folder, modules it must not import): every import of every file under the folder is checked.
WALLS = [
    (API / "domain", ("fastapi", "starlette", "usagemeter_api.api", "usagemeter_api.main", "usagemeter_api.services")),
    (API / "schemas", ("usagemeter_api.domain", "usagemeter_api.api", "usagemeter_api.core")),
    (API / "core", ("usagemeter_api.domain", "usagemeter_api.api", "usagemeter_api.services")),
    (
        COLLECTOR / "_spool",
        ("usagemeter_collector._checks", "usagemeter_collector._drain", "usagemeter_collector._receivers"),
    ),
    (COLLECTOR / "_checks", ("usagemeter_collector._drain", "usagemeter_collector._receivers")),
    (COLLECTOR / "_drain", ("usagemeter_collector._checks", "usagemeter_collector._receivers")),
    # A host service installs the instrumentation alone: it needs nothing else of usagemeter's.
    (
        ROOT / "instrumentation/src/usagemeter_instrumentation",
        ("usagemeter", "usagemeter_api", "usagemeter_collector", "usagemeter_clickhouse"),
    ),
]


def imported(path: Path) -> set[str]:
    """The modules ``path`` imports, at any depth of the file (deferred imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize(("folder", "forbidden"), WALLS, ids=[str(folder.relative_to(ROOT)) for folder, _ in WALLS])
def test_no_import_crosses_the_wall_below_the_package(folder: Path, forbidden: tuple[str, ...]) -> None:
    files = sorted(folder.rglob("*.py"))
    assert files, f"nothing found under {folder}"
    crossings = {
        (str(path.relative_to(ROOT)), name)
        for path in files
        for name in imported(path)
        if any(within(name, wall) for wall in forbidden)
    }
    assert crossings == set()
