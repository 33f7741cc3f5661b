"""Exact int64 totals per (user, slice) entry in a few flat numpy arrays, with no Python object per entry.

A million entries as ``dict[str, int]`` keys are a million strings, ints and dict slots
(~900 bytes an entry with the float rows of the previous view). Here an entry is a row of
flat arrays: its 64-bit key hash, its slice number (a handful of slices are interned), where
its user id's UTF-8 bytes sit in one byte arena, and its totals. An open-addressing table of
row numbers (``int32``, at most half full) finds the row of a key; the id bytes are compared on
every hit, so two keys sharing a hash never share a row.

One thread writes; readers may look up concurrently. A row is written in full, and every grown
array is swapped in, before any slot points at it, so a reader that reads a slot first and the
row arrays after always finds a complete row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from usagemeter_api.domain.usage.slices import Slice

__all__ = ["EntryTable", "Rows"]

Rows = npt.NDArray[np.intp]

_INITIAL_ROWS = 1024
_GROWTH = 1.25
_EMPTY = -1


class EntryTable:
    """A growing table of ``columns`` int64 totals per (user id, slice) entry.

    Totals that would leave the int64 range are never wrapped: :meth:`add` marks their rows
    overflowed, and :meth:`total` answers None for them from then on.
    """

    def __init__(self, columns: int, capacity: int = _INITIAL_ROWS) -> None:
        capacity = max(capacity, 1)
        self._count = 0
        self._slices: dict[Slice, int] = {}
        self._hash = np.zeros(capacity, dtype=np.int64)
        self._slice = np.zeros(capacity, dtype=np.int32)
        self._user_at = np.zeros(capacity, dtype=np.int64)
        self._user_len = np.zeros(capacity, dtype=np.int32)
        self._arena = np.zeros(capacity * 16, dtype=np.uint8)
        self._arena_used = 0
        self._slots = np.full(_slot_count(capacity), _EMPTY, dtype=np.int32)
        self.sums = np.zeros((capacity, columns), dtype=np.int64)
        #: Rows some total of which left the int64 range (few: each is 9.2 trillion units).
        self.overflowed: set[int] = set()

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold (the interned slices aside)."""
        arrays = (self._hash, self._slice, self._user_at, self._user_len, self._arena, self._slots, self.sums)
        return sum(array.nbytes for array in arrays)

    def find(self, user_id: str, part: Slice) -> int:
        """The row of (``user_id``, ``part``), or -1 when the table has none."""
        number = self._slices.get(part)
        if number is None:
            return -1
        key = hash((user_id, number))
        slots = self._slots  # the slots first: every row they name is complete in the arrays read after
        mask = len(slots) - 1
        position = key & mask
        while (row := int(slots[position])) != _EMPTY:
            if int(self._hash[row]) == key and int(self._slice[row]) == number and self._user_is(row, user_id):
                return row
            position = (position + 1) & mask
        return -1

    def total(self, row: int, column: int) -> int | None:
        """The total of ``column`` in ``row`` (from :meth:`find`; -1 holds 0), None when it overflowed."""
        if row < 0:
            return 0
        if row in self.overflowed:
            return None
        return int(self.sums[row, column])

    def user_of(self, row: int) -> str:
        """The user id of ``row``."""
        start = int(self._user_at[row])
        return bytes(self._arena[start : start + int(self._user_len[row])]).decode()

    def rows_for(self, users: Sequence[str], parts: Sequence[Slice]) -> Rows:
        """The rows of the entries ``zip(users, parts)``, adding rows (all zero) for entries not yet held."""
        numbers = np.fromiter((self._slice_number(part) for part in parts), dtype=np.int32, count=len(parts))
        keys = np.fromiter(
            (hash(pair) for pair in zip(users, numbers.tolist(), strict=True)), dtype=np.int64, count=len(users)
        )
        rows = self._lookup(keys, numbers, users)
        missing = np.flatnonzero(rows == _EMPTY)
        if missing.size:
            rows[missing] = self._insert(keys[missing], numbers[missing], [users[i] for i in missing.tolist()])
        return rows

    def add(self, rows: Rows, sums: npt.NDArray[np.int64], columns: Sequence[int] | None = None) -> None:
        """Add ``sums[i]`` to the totals of ``rows[i]`` (distinct rows) in ``columns`` (default: all).

        A total leaving the int64 range marks its row overflowed instead of wrapping.
        """
        if not len(rows):
            return
        selected = np.arange(self.sums.shape[1]) if columns is None else np.asarray(columns, dtype=np.intp)
        cells = np.ix_(rows, selected)
        before = self.sums[cells]
        after = before + sums
        # Signed overflow: both operands of one sign and the wrapped result of the other.
        wrapped = ((before ^ after) & (sums ^ after)) < 0
        if wrapped.any():
            self.overflowed.update(rows[wrapped.any(axis=1)].tolist())
        self.sums[cells] = after

    def _slice_number(self, part: Slice) -> int:
        number = self._slices.get(part)
        if number is None:
            number = self._slices[part] = len(self._slices)
        return number

    def _user_is(self, row: int, user_id: str) -> bool:
        start = int(self._user_at[row])
        stored = self._arena[start : start + int(self._user_len[row])]
        return bool(stored.tobytes() == user_id.encode())

    def _lookup(self, keys: npt.NDArray[np.int64], numbers: npt.NDArray[np.int32], users: Sequence[str]) -> Rows:
        """Rows of the keys held, -1 for the others: every key probes its run of slots in step."""
        slots = self._slots
        mask = len(slots) - 1
        rows = np.full(len(keys), _EMPTY, dtype=np.intp)
        positions = keys & mask
        pending = np.arange(len(keys))
        while pending.size:
            held = slots[positions[pending]].astype(np.intp)
            occupied = held != _EMPTY
            pending, held = pending[occupied], held[occupied]
            same = (self._hash[held] == keys[pending]) & (self._slice[held] == numbers[pending])
            for index in np.flatnonzero(same).tolist():
                if self._user_is(int(held[index]), users[pending[index]]):
                    rows[pending[index]] = held[index]
            pending = pending[rows[pending] == _EMPTY]
            positions[pending] = (positions[pending] + 1) & mask
        return rows

    def _insert(self, keys: npt.NDArray[np.int64], numbers: npt.NDArray[np.int32], users: list[str]) -> Rows:
        """New rows for entries not held (a batch may name one several times): rows first, slots last."""
        first: dict[tuple[str, int], int] = {}
        for index, pair in enumerate(zip(users, numbers.tolist(), strict=True)):
            first.setdefault(pair, index)
        distinct = np.fromiter(first.values(), dtype=np.intp, count=len(first))
        start = self._count
        new_rows = np.arange(start, start + len(distinct), dtype=np.intp)
        self._reserve(start + len(distinct))
        encoded = [users[index].encode() for index in distinct.tolist()]
        self._write_rows(new_rows, keys[distinct], numbers[distinct], encoded)
        self._place(new_rows, keys[distinct])
        self._count = start + len(distinct)
        row_of = dict(zip(first, new_rows.tolist(), strict=True))
        return np.fromiter(
            (row_of[pair] for pair in zip(users, numbers.tolist(), strict=True)), dtype=np.intp, count=len(users)
        )

    def _write_rows(
        self, rows: Rows, keys: npt.NDArray[np.int64], numbers: npt.NDArray[np.int32], encoded: list[bytes]
    ) -> None:
        lengths = np.fromiter((len(item) for item in encoded), dtype=np.int64, count=len(encoded))
        used = self._arena_used
        needed = used + int(lengths.sum())
        if needed > len(self._arena):
            arena = np.zeros(max(needed, int(len(self._arena) * _GROWTH)), dtype=np.uint8)
            arena[:used] = self._arena[:used]
            self._arena = arena
        self._arena[used:needed] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._user_at[rows] = used + np.cumsum(lengths) - lengths
        self._user_len[rows] = lengths
        self._hash[rows] = keys
        self._slice[rows] = numbers
        self._arena_used = needed

    def _place(self, rows: Rows, keys: npt.NDArray[np.int64]) -> None:
        """Point slots at new ``rows``; past half full, into a larger table of every row, swapped in after."""
        slots = self._slots
        if 2 * (self._count + len(rows)) > len(slots):
            slots = np.full(_slot_count(self._count + len(rows)), _EMPTY, dtype=np.int32)
            held = np.arange(self._count, dtype=np.intp)
            _fill(slots, held, self._hash[held])
        _fill(slots, rows, keys)
        self._slots = slots

    def _reserve(self, needed: int) -> None:
        # Each array is grown into a copy that replaces it in one assignment: a reader holds
        # the old array or the new one, both complete for every row a slot names.
        capacity = len(self._hash)
        if needed <= capacity:
            return
        grown = max(needed, int(capacity * _GROWTH))
        for name in ("_hash", "_slice", "_user_at", "_user_len", "sums"):
            old = getattr(self, name)
            array = np.zeros((grown, *old.shape[1:]), dtype=old.dtype)
            array[:capacity] = old
            setattr(self, name, array)


def _fill(slots: npt.NDArray[np.int32], rows: Rows, keys: npt.NDArray[np.int64]) -> None:
    """Point free slots at ``rows``: each probes on from its key's slot, the first of a clash takes it."""
    mask = len(slots) - 1
    positions = keys & mask
    pending = np.arange(len(rows))
    while pending.size:
        at = positions[pending]
        free = np.flatnonzero(slots[at] == _EMPTY)
        taken, first = np.unique(at[free], return_index=True)
        slots[taken] = rows[pending[free[first]]]
        placed = np.zeros(len(pending), dtype=bool)
        placed[free[first]] = True
        pending = pending[~placed]
        positions[pending] = (positions[pending] + 1) & mask


def _slot_count(rows: int) -> int:
    """A power of two at least twice ``rows``."""
    return 1 << max(4, (2 * max(rows, 1) - 1).bit_length())
