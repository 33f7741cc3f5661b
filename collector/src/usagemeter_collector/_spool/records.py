"""The body of a spool record: one accepted request, validated and converted, ready to insert.

It carries the request's content hash (for resend detection), the cumulative
series states its conversion moved to (so they can be rebuilt after a crash),
and what is inserted: a metrics request as its ExportMetricsServiceRequest
protobuf bytes with the metric kinds and point count it holds (ClickHouse
decodes it), or rows column by column per table. Packed with MessagePack.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from usagemeter_collector._spool.series import SeriesState

#: One row of a raw table, its values in the table's column order (``_schema``).
Row = tuple[Any, ...]
#: A cumulative series' identity and the state a request's conversion moved it to.
SeriesUpdate = tuple[Hashable, SeriesState]


@dataclass(frozen=True)
class MetricsRequest:
    """A checked ExportMetricsServiceRequest kept as protobuf."""

    body: bytes
    kinds: tuple[str, ...]
    points: int


@dataclass(frozen=True)
class Record:
    """One spooled request."""

    digest: bytes
    updates: list[SeriesUpdate]
    columns: dict[str, list[list[Any]]]
    request: MetricsRequest | None = None

    @property
    def row_count(self) -> int:
        rows = sum(len(cols[0]) for cols in self.columns.values() if cols)
        return rows + (self.request.points if self.request is not None else 0)


def encode_record(digest: bytes, updates: Sequence[SeriesUpdate], rows: Mapping[str, list[Row]]) -> bytes:
    """The spool body of a request's rows (table → rows) and series updates."""
    columns = {table: list(zip(*table_rows, strict=True)) for table, table_rows in rows.items() if table_rows}
    return _pack(digest, updates, columns, None)


def encode_request_record(digest: bytes, updates: Sequence[SeriesUpdate], request: MetricsRequest) -> bytes:
    """The spool body of a metrics request kept as protobuf, and its series updates."""
    return _pack(digest, updates, {}, request)


def _pack(
    digest: bytes, updates: Sequence[SeriesUpdate], columns: dict[str, Any], request: MetricsRequest | None
) -> bytes:
    packed_updates = [(key, tuple(state)) for key, state in updates]
    fields: tuple[Any, ...] = (digest, packed_updates, columns)
    if request is not None:
        fields += (request.body, list(request.kinds), request.points)
    return bytes(msgpack.packb(fields, use_bin_type=True))


def decode_record(body: bytes) -> Record:
    """A spool body back as a :class:`Record`."""
    digest, updates, columns, *request = msgpack.unpackb(body, raw=False, strict_map_key=False)
    metrics = MetricsRequest(request[0], tuple(request[1]), request[2]) if request else None
    return Record(digest, [(freeze(key), SeriesState(*state)) for key, state in updates], columns, metrics)


def freeze(value: Any) -> Any:
    """Lists (as MessagePack returns tuples) back into hashable tuples, recursively."""
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value
