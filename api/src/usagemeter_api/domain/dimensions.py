"""The dimension allow-list: the attributes usage may be sliced by, as ``usagemeter migrate`` stored them."""

from __future__ import annotations

from usagemeter_clickhouse import Client, tables

__all__ = ["allowed_dimensions"]

_ALLOWED_SQL = f"SELECT Attribute FROM {tables.USAGE_DIMENSIONS} FINAL WHERE Active ORDER BY Attribute"


def allowed_dimensions(client: Client) -> list[str]:
    """The attributes on the allow-list (``USAGEMETER_DIMENSION_ATTRIBUTES``), sorted."""
    return [str(row[0]) for row in client.query(_ALLOWED_SQL).result_rows]
