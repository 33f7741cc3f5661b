"""The compact table behind the in-memory quota view: exact, growing, invisible to the GC."""

from __future__ import annotations

import gc

import numpy as np

from usagemeter_api.domain.usage._pair_totals import PairTotals, pair_key


def test_pairs_that_concatenate_alike_stay_apart() -> None:
    table = PairTotals()
    pairs = [("a:b", "c"), ("a", "b:c"), ("a\x1fb", "c"), ("a", "b\x1fc"), ("", "ab:c"), ("ab:c", "")]
    table.add([pair_key(user, feature) for user, feature in pairs], np.arange(18, dtype=np.float64).reshape(6, 3))
    assert [table.total(pair_key(user, feature), 0) for user, feature in pairs] == [0, 3, 6, 9, 12, 15]
    assert table.total(pair_key("a", "c"), 0) == 0


def test_totals_stay_exact_as_the_table_grows_and_keys_repeat() -> None:
    table = PairTotals(capacity=2)
    keys = [f"k{n % 500}" for n in range(5_000)]
    table.add(keys, np.ones((len(keys), 3)))
    table.add(["k7", "k7", "new"], np.array([[2.0**52, 1, 1], [1, 1, 1], [4, 5, 6]]))
    assert len(table) == 501
    assert table.total("k7", 0) == 2.0**52 + 11
    assert [table.total("new", period) for period in range(3)] == [4, 5, 6]
    assert table.total("k499", 2) == 10


def test_the_table_holds_no_objects_the_collector_tracks() -> None:
    table = PairTotals()
    table.add([pair_key(f"user-{n}", "feature") for n in range(10_000)], np.ones((10_000, 3)))
    # A dict of str -> int is untracked; one holding tuples or lists would be tracked.
    assert not gc.is_tracked(table._rows)
    assert table._sums.dtype == np.float64
