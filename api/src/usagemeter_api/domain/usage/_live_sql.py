"""The queries behind the in-memory usage view, and their results read as blocks of int64 micro-units.

Every query sums ``Quantity`` (Decimal128(6)) per (user, feature, dimension key, dimension value)
and one window per column, then turns each sum into Int64 micro-units in ClickHouse: exact, never
through Float64. A sum outside the Int64 range comes back as 0 with the row's ``overflow`` flag set.

Three sources feed the columns, each as of a watermark ``W`` (an ingest minute):

* calendar windows and lifetime, usage ingested before ``W``: the day (or month) rollup minus the
  ingest rollup's rows from ``W`` on;
* rolling windows, usage ingested before ``W``: the ingest rollup's rows from the window's start
  less the senders' allowed clock skew (no point is stored further ahead than that, so no row of a
  minute is stamped earlier) up to ``W``: a bounded scan of a table ordered by ingest minute;
* every window, usage ingested from ``W`` on: the ingest rollup's newest rows, per event minute, which
  the view sums into each window.

A column that moves from one window to the next reads only what differs: the usage of the new
window less that of the old, minutes in both counted in neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.periods import LIFETIME, Window
from usagemeter_api.domain.usage._entries import EntryTable, Rows
from usagemeter_api.domain.usage._live_state import Delta, State, in_windows
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import Client, tables

__all__ = ["Block", "Ingested", "Query", "WindowMove", "read_blocks", "read_ingested", "read_moves"]

_KEYS = "UserId, FeatureKey, DimensionKey, DimensionValue"
_INT64_UNITS = "toDecimal128('9223372036854.775807', 6)"
_ZERO = "toDecimal128(0, 6)"
#: Rows per block read (and per chunk of a load): bounds what a read holds at once.
BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class WindowMove:
    """A column's window before (None: not held yet) and after; the column reads the difference."""

    old: Window | None
    new: Window


@dataclass(frozen=True)
class Block:
    """Rows of a result: their entries, int64 sums per column and overflow flags."""

    users: list[str]
    parts: list[Slice]
    sums: npt.NDArray[np.int64]
    overflow: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Ingested:
    """Usage ingested from the watermark on: per entry row and event minute (epoch seconds), in micro-units."""

    rows: Rows
    settled: npt.NDArray[np.bool_]
    minutes: npt.NDArray[np.int64]
    micros: npt.NDArray[np.int64]
    overflow: npt.NDArray[np.bool_]

    def in_windows(self, windows: Sequence[Window], *, settled: bool) -> Delta:
        """The usage of the settled (or the other) ingest minutes per entry row in each of ``windows``."""
        chosen = self.settled == settled
        return in_windows(self.rows[chosen], self.minutes[chosen], self.micros[chosen], self.overflow[chosen], windows)


class Query:
    """One query's SQL, built column by column, and its parameters."""

    def __init__(self, watermark: datetime) -> None:
        self.parameters: dict[str, object] = {"watermark": naive_utc(watermark)}
        self._count = 0

    def _within(self, window: Window, column: str, as_date: bool) -> str:
        if window == LIFETIME:
            return "1"
        name = f"w{self._count}"
        self._count += 1
        if as_date:
            self.parameters[f"{name}s"], self.parameters[f"{name}e"] = window.start.date(), window.end.date()
            kind = "Date"
        else:
            self.parameters[f"{name}s"], self.parameters[f"{name}e"] = naive_utc(window.start), naive_utc(window.end)
            kind = "DateTime('UTC')"
        return f"({column} >= {{{name}s:{kind}}} AND {column} < {{{name}e:{kind}}})"

    def _moved(self, move: WindowMove, value: str, column: str, as_date: bool) -> tuple[str, str]:
        """The sum of what ``move`` changes, and the condition of the rows it reads."""
        new = self._within(move.new, column, as_date)
        if move.old is None:
            return f"sumIf({value}, {new})", new
        old = self._within(move.old, column, as_date)
        entering, leaving = f"{new} AND NOT {old}", f"{old} AND NOT {new}"
        return f"sumIf({value}, {entering}) - sumIf({value}, {leaving})", f"({entering}) OR ({leaving})"

    def settled_calendar(self, moves: Sequence[WindowMove], chunked: bool) -> str:
        """Calendar and lifetime columns moved, as ingested before the watermark (day and month rollups)."""
        sums = [
            "sum(Life)" if move.new == LIFETIME else self._moved(move, "Cal", "Day", as_date=True)[0] for move in moves
        ]
        chunk = self._chunk(chunked)
        lifetime = any(move.new == LIFETIME for move in moves)
        first, last = self._span([move for move in moves if move.new != LIFETIME])
        branches = [
            f"SELECT {_KEYS}, Day, Quantity AS Cal, {_ZERO} AS Life FROM {tables.USAGE_DAY}"
            f" WHERE Day >= toDate({first}) AND Day < toDate({last}){chunk}",
            f"SELECT {_KEYS}, toDate(Minute) AS Day, -Quantity AS Cal, -Quantity AS Life FROM {tables.USAGE_INGEST}"
            f" WHERE IngestMinute >= {{watermark:DateTime('UTC')}}{chunk}",
        ]
        if lifetime:
            branches.append(
                f"SELECT {_KEYS}, toDate('1970-01-01') AS Day, {_ZERO} AS Cal, Quantity AS Life"
                f" FROM {tables.USAGE_MONTH} WHERE 1{chunk}"
            )
        return _micros(sums, " UNION ALL ".join(branches))

    def settled_rolling(self, moves: Sequence[WindowMove], skew: timedelta, chunked: bool) -> str:
        """Rolling columns moved, as ingested before the watermark: a scan bounded by ingest minute."""
        moved = [self._moved(move, "Quantity", "Minute", as_date=False) for move in moves]
        sums = [expression for expression, _ in moved]
        # Only the minutes entering or leaving a window: the rest of the scan reads the Minute column alone.
        changed = " OR ".join(f"({condition})" for _, condition in moved)
        earliest = min(min(move.new.start, move.old.start if move.old else move.new.start) for move in moves)
        self.parameters["scan_from"] = naive_utc(earliest - skew)
        source = (
            f"SELECT {_KEYS}, Minute, Quantity FROM {tables.USAGE_INGEST}"
            f" WHERE IngestMinute >= {{scan_from:DateTime('UTC')}} AND IngestMinute < {{watermark:DateTime('UTC')}}"
            f" AND ({changed}){self._chunk(chunked)}"
        )
        return _micros(sums, source)

    def ingested_since(self, settled: datetime) -> str:
        """Usage ingested from the watermark on per entry and event minute, split at the ``settled`` ingest minute.

        The view sums the minutes into each column's window itself: one ``sumIf`` per column made
        this query, run every cycle, several times as costly for ClickHouse to plan.
        """
        self.parameters["settled"] = naive_utc(settled)
        source = (
            f"SELECT IngestMinute < {{settled:DateTime('UTC')}} AS Settled, toUnixTimestamp(Minute) AS EventMinute,"
            f" {_KEYS}, Quantity FROM {tables.USAGE_INGEST} WHERE IngestMinute >= {{watermark:DateTime('UTC')}}"
        )
        return _micros(["sum(Quantity)"], source, group="Settled, EventMinute, ")

    def chunk(self, chunks: int, chunk: int) -> None:
        """Read the entries of one of ``chunks`` parts by user hash (set before each read of a chunked query)."""
        self.parameters["chunks"], self.parameters["chunk"] = chunks, chunk

    def _chunk(self, chunked: bool) -> str:
        return " AND cityHash64(UserId) % {chunks:UInt64} = {chunk:UInt64}" if chunked else ""

    def _span(self, moves: Sequence[WindowMove]) -> tuple[str, str]:
        """Placeholders of the earliest start and latest end among the windows moved (rows outside count nowhere)."""
        windows = [window for move in moves for window in (move.old, move.new) if window is not None]
        self.parameters["span_start"] = naive_utc(min((window.start for window in windows), default=LIFETIME.start))
        self.parameters["span_end"] = naive_utc(min(max((w.end for w in windows), default=_FAR), _FAR))
        return "{span_start:DateTime('UTC')}", "{span_end:DateTime('UTC')}"


#: The latest moment a ``DateTime`` parameter holds comfortably (the lifetime window ends later).
_FAR = datetime(2105, 1, 1, tzinfo=LIFETIME.end.tzinfo)


def _micros(sums: Sequence[str], source: str, group: str = "") -> str:
    """Group ``source`` by entry, each sum in Int64 micro-units, and one flag for a sum outside Int64."""
    inner = ", ".join(f"{expression} AS s{index}" for index, expression in enumerate(sums))
    values = ", ".join(
        f"toInt64(if(abs(s{index}) <= {_INT64_UNITS}, s{index}, {_ZERO}) * 1000000)" for index in range(len(sums))
    )
    overflow = " OR ".join(f"abs(s{index}) > {_INT64_UNITS}" for index in range(len(sums)))
    keys = f"{group}{_KEYS}"
    return f"SELECT {keys}, {values}, {overflow} FROM (SELECT {keys}, {inner} FROM ({source}) GROUP BY {keys})"


def read_blocks(client: Client, sql: str, parameters: dict[str, object]) -> Iterator[Block]:
    """The result of ``sql`` block by block (at most :data:`BLOCK_ROWS` rows each)."""
    for columns in _column_blocks(client, sql, parameters):
        users, features, keys, values, *sums, overflow = columns
        matrix = np.column_stack([np.asarray(column, dtype=np.int64) for column in sums])
        yield Block(list(users), _slices(features, keys, values), matrix, np.asarray(overflow, dtype=bool))


def read_ingested(client: Client, table: EntryTable, query: Query, settled: datetime) -> Ingested:
    """The usage ingested since ``query``'s watermark, as :meth:`Query.ingested_since` reads it, in one set of arrays.

    Entries not held yet get their rows in ``table``.
    """
    sql = query.ingested_since(settled)
    rows, flags, minutes, micros, overflow = [], [], [], [], []
    for block in _column_blocks(client, sql, query.parameters):
        block_flags, block_minutes, users, features, keys, values, block_micros, block_overflow = block
        rows.append(table.rows_for(list(users), _slices(features, keys, values)))
        flags.append(np.asarray(block_flags, dtype=np.bool_))
        minutes.append(np.asarray(block_minutes, dtype=np.int64))
        micros.append(np.asarray(block_micros, dtype=np.int64))
        overflow.append(np.asarray(block_overflow, dtype=np.bool_))
    return Ingested(
        _joined(rows, np.intp),
        _joined(flags, np.bool_),
        _joined(minutes, np.int64),
        _joined(micros, np.int64),
        _joined(overflow, np.bool_),
    )


def _joined(parts: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _column_blocks(client: Client, sql: str, parameters: dict[str, object]) -> Iterator[Sequence[Sequence[Any]]]:
    settings = {"max_block_size": BLOCK_ROWS}
    with client.query_column_block_stream(sql, parameters=parameters, settings=settings) as stream:
        yield from stream


def _slices(features: Sequence[str], keys: Sequence[str], values: Sequence[str]) -> list[Slice]:
    return [Slice(*part) for part in zip(features, keys, values, strict=True)]


_ROWS_SQL = f"SELECT count() FROM {tables.USAGE_MONTH}"


def read_moves(client: Client, state: State, moves: list[WindowMove], skew: timedelta | None) -> Iterator[Delta]:
    """The base's change per entry for calendar ``moves`` (``skew`` None) or rolling ones, block by block.

    Loads and calendar moves read in chunks of entries; the rolling moves of a turned minute in one read.
    """
    query = Query(state.watermark)
    chunks = _chunks(client) if skew is None or any(move.old is None for move in moves) else 1
    chunked = chunks > 1
    sql = query.settled_calendar(moves, chunked) if skew is None else query.settled_rolling(moves, skew, chunked)
    for chunk in range(chunks):
        if chunked:
            query.chunk(chunks, chunk)
        for block in read_blocks(client, sql, query.parameters):
            yield Delta(state.table.rows_for(block.users, block.parts), block.sums, block.overflow)


def _chunks(client: Client) -> int:
    """Parts to load the entries in, so no read holds more than about a block's worth of rows."""
    rows = int(client.query(_ROWS_SQL).result_rows[0][0])
    return max(1, math.ceil(rows / BLOCK_ROWS))
