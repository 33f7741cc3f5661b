"""The body of a spool record: one accepted request, validated and converted, ready to insert.

It carries the request's content hash (for resend detection), the cumulative
series states its conversion moved to (so they can be rebuilt after a crash)
and its rows column by column per table, packed with MessagePack.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from usagemeter_collector._cumulative import SeriesState
from usagemeter_collector._decoded import Row

SeriesUpdate = tuple[Hashable, SeriesState]


@dataclass(frozen=True)
class Record:
    """One spooled request."""

    digest: bytes
    updates: list[SeriesUpdate]
    columns: dict[str, list[list[Any]]]

    @property
    def row_count(self) -> int:
        return sum(len(cols[0]) for cols in self.columns.values() if cols)


def encode_record(digest: bytes, updates: Sequence[SeriesUpdate], rows: Mapping[str, list[Row]]) -> bytes:
    """The spool body of a request's rows (table → rows) and series updates."""
    columns = {table: list(zip(*table_rows, strict=True)) for table, table_rows in rows.items() if table_rows}
    packed_updates = [(key, tuple(state)) for key, state in updates]
    return bytes(msgpack.packb((digest, packed_updates, columns), use_bin_type=True))


def decode_record(body: bytes) -> Record:
    """A spool body back as a :class:`Record`."""
    digest, updates, columns = msgpack.unpackb(body, raw=False, strict_map_key=False)
    return Record(digest, [(freeze(key), SeriesState(*state)) for key, state in updates], columns)


def freeze(value: Any) -> Any:
    """Lists (as MessagePack returns tuples) back into hashable tuples, recursively."""
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value
