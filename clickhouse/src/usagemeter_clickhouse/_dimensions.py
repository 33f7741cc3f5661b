"""The allow-list of dimension attributes: checked names, written into ``usage_dimensions``, read back.

The rollup views read ``usage_dimensions`` of the host a row arrives on, so every host keeps the
same rows. A change inserts newer versions of the rows it changes (listed names active, names no
longer listed inactive) and deletes nothing: a name that stays listed is never missing, not even
for a moment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

from clickhouse_connect.driver.client import Client

from usagemeter_clickhouse import tables
from usagemeter_clickhouse._errors import SchemaError

__all__ = ["MAX_DIMENSION_ATTRIBUTES", "check_dimension_attributes", "dimension_attributes", "write_dimensions"]

#: Most attributes usage may be sliced by: each one adds a row per point to every rollup.
MAX_DIMENSION_ATTRIBUTES = 16
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: The attributes that identify usage itself, never a slice of it.
_RESERVED = frozenset({tables.USER_ATTRIBUTE, tables.FEATURE_ATTRIBUTE})


def check_dimension_attributes(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple if they make a valid allow-list, else a SchemaError naming the first problem."""
    checked = tuple(names)
    for name in checked:
        if not _NAME.match(name):
            raise SchemaError(f"dimension attribute {name!r} must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
        if name in _RESERVED:
            raise SchemaError(f"dimension attribute {name!r} identifies the usage itself and cannot slice it")
        if checked.count(name) > 1:
            raise SchemaError(f"dimension attribute {name!r} is listed twice")
    if len(checked) > MAX_DIMENSION_ATTRIBUTES:
        raise SchemaError(f"at most {MAX_DIMENSION_ATTRIBUTES} dimension attributes, got {len(checked)}")
    return checked


def dimension_attributes(client: Client) -> list[str]:
    """The attributes usage is sliced by, as the client's host holds them, sorted."""
    rows = client.query(
        f"SELECT Attribute FROM {tables.USAGE_DIMENSIONS} FINAL WHERE Active ORDER BY Attribute"
    ).result_rows
    return [str(row[0]) for row in rows]


def write_dimensions(client: Client, names: Sequence[str]) -> None:
    """Make the client's host slice usage by exactly ``names`` (idempotent: an unchanged list writes nothing)."""
    wanted = set(check_dimension_attributes(names))
    current = {
        str(attribute): (bool(active), int(version))
        for attribute, active, version in client.query(
            f"SELECT Attribute, Active, Version FROM {tables.USAGE_DIMENSIONS} FINAL"
        ).result_rows
    }
    changes = [(name, True) for name in sorted(wanted) if not current.get(name, (False, 0))[0]]
    changes += [(name, False) for name, (active, _) in sorted(current.items()) if active and name not in wanted]
    if not changes:
        return
    # Newer than every row the host holds, and than any version an earlier run could have written.
    version = max([time.time_ns() // 1000] + [v + 1 for _, v in current.values()])
    client.insert(
        tables.USAGE_DIMENSIONS,
        [[name, active, version] for name, active in changes],
        column_names=["Attribute", "Active", "Version"],
    )
