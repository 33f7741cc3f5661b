"""The compact table behind the in-memory usage view: exact int64 totals, keys apart, no object per entry."""

from __future__ import annotations

import sys
import tracemalloc
from datetime import UTC, datetime

import numpy as np

from usagemeter_api.domain.periods import LIFETIME, Window
from usagemeter_api.domain.usage._entries import EntryTable
from usagemeter_api.domain.usage._live_state import in_windows
from usagemeter_api.domain.usage.slices import Slice

TOTAL = Slice("f")


def test_entries_whose_ids_concatenate_alike_stay_apart() -> None:
    table = EntryTable(1)
    entries = [("a:b", Slice("c")), ("a", Slice("b:c")), ("", Slice("ab", "c")), ("ab", Slice("", "c")), ("é", TOTAL)]
    rows = table.rows_for([user for user, _ in entries], [part for _, part in entries])
    table.add(rows, np.arange(1, 6, dtype=np.int64).reshape(5, 1))
    assert [table.total(table.find(user, part), 0) for user, part in entries] == [1, 2, 3, 4, 5]
    assert table.find("e", TOTAL) == -1
    assert table.total(table.find("a", Slice("c")), 0) == 0


def test_keys_sharing_a_hash_slot_are_told_apart_by_their_ids() -> None:
    table = EntryTable(1, capacity=2)
    users = [f"user-{n}" for n in range(5_000)]
    rows = table.rows_for(users, [TOTAL] * len(users))
    # Half full at most: every lookup probes past other keys' slots, and compares the ids it meets.
    assert len(set(rows.tolist())) == len(users) == len(table)
    assert [table.find(user, TOTAL) for user in users] == rows.tolist()
    assert (table.rows_for(users[::-1], [TOTAL] * len(users)) == rows[::-1]).all()


def test_an_entry_whose_hash_matches_but_whose_id_differs_is_not_found() -> None:
    table = EntryTable(1)
    (row,) = table.rows_for(["alice"], [TOTAL])
    # Make the stored id another of the same length under alice's hash: as if two ids shared a 64-bit hash.
    start = int(table._user_at[row])
    table._arena[start : start + 5] = np.frombuffer(b"alicf", dtype=np.uint8)
    assert table.find("alice", TOTAL) == -1
    assert table.rows_for(["alice"], [TOTAL])[0] != row  # a row of its own, not the other id's


def test_totals_stay_exact_as_the_table_grows_and_entries_repeat_in_a_batch() -> None:
    table = EntryTable(3, capacity=2)
    users = [f"u{n % 500}" for n in range(5_000)]
    for start in range(0, len(users), 500):
        rows = table.rows_for(users[start : start + 500], [TOTAL] * 500)
        table.add(rows, np.ones((500, 3), dtype=np.int64))
    repeated = table.rows_for(["u7", "u7", "new"], [TOTAL] * 3)
    assert repeated[0] == repeated[1]
    table.add(repeated[1:], np.array([[2**62, 1, 1], [4, 5, 6]], dtype=np.int64))
    assert len(table) == 501
    assert table.total(table.find("u7", TOTAL), 0) == 2**62 + 10
    assert [table.total(table.find("new", TOTAL), column) for column in range(3)] == [4, 5, 6]


def test_a_total_leaving_int64_marks_its_entry_overflowed_instead_of_wrapping() -> None:
    table = EntryTable(2)
    rows = table.rows_for(["whale", "minnow"], [TOTAL, TOTAL])
    table.add(rows, np.array([[2**63 - 10, 1], [5, 5]], dtype=np.int64))
    table.add(rows, np.array([[10, 1], [-(2**62), 5]], dtype=np.int64), columns=[0, 1])
    assert table.total(rows[0], 0) is None
    assert table.total(rows[0], 1) is None
    assert table.total(rows[1], 0) == 5 - 2**62
    table.add(rows[1:], np.array([[-(2**62) - 2**62]], dtype=np.int64), columns=[0])
    assert table.total(rows[1], 0) is None


def test_the_table_holds_no_python_object_per_entry() -> None:
    users = [f"user-{n}" for n in range(20_000)]
    parts = [Slice("f", "model", str(n % 3)) for n in range(20_000)]
    references = [sys.getrefcount(user) for user in users[:100]]
    tracemalloc.start()
    try:
        table = EntryTable(6)
        table.rows_for(users, parts)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(user) for user in users[:100]] == references  # no id string kept
    assert held < table.nbytes * 1.1 + 64 * 1024  # what the table holds is its arrays
    assert table.nbytes / len(table) < 130


def test_minutes_sum_per_entry_into_each_window_they_fall_in() -> None:
    def at(hour: int, minute: int) -> int:
        return int(datetime(2026, 12, 1, hour, minute, tzinfo=UTC).timestamp())

    morning = Window(datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 12, tzinfo=UTC))
    rows = np.array([7, 3, 7, 3, 7], dtype=np.intp)
    minutes = np.array([at(9, 0), at(8, 59), at(11, 59), at(12, 0), at(10, 30)], dtype=np.int64)
    micros = np.array([1, 10, 100, 1_000, 10_000], dtype=np.int64)
    delta = in_windows(rows, minutes, micros, np.zeros(5, dtype=bool), [morning, LIFETIME])
    assert delta.rows.tolist() == [3, 7]
    # 8:59 and 12:00 are outside the morning: a window holds its start, not its end.
    assert delta.sums.tolist() == [[0, 1_010], [10_101, 10_101]]
    assert not delta.overflow.any()


def test_minutes_whose_sum_leaves_int64_flag_their_entry_instead_of_wrapping() -> None:
    big = 2**62
    rows = np.array([1, 1, 2, 3], dtype=np.intp)
    flagged = np.array([False, False, False, True])
    delta = in_windows(rows, np.zeros(4, dtype=np.int64), np.array([big, big, -big, 5]), flagged, [LIFETIME])
    assert delta.rows.tolist() == [1, 2, 3]
    # 2**63 wraps in int64: the entry is flagged (its figures come from ClickHouse), its sum not kept.
    assert delta.overflow.tolist() == [True, False, True]
    assert delta.sums[:2].tolist() == [[0], [-big]]
