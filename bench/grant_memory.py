"""Grant store benchmark: what a held grant costs in memory, and what the quota path's lookup costs.

Builds the store's in-memory index of ``--grants`` live grants (one user each, a 40-character
reason: what an admin types), measures its size with tracemalloc, and times ``GrantStore.active``
for a user without grants and a user with two against the same run's baseline, a plain
``dict.get`` of the user's entry (what any in-memory lookup costs at least).

    .venv/bin/python bench/grant_memory.py [--grants 100000] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import gc
import timeit
import tracemalloc
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from usagemeter_api.domain.grants import Grant, GrantStore

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _grants(count: int) -> list[Grant]:
    return [
        Grant(
            grant_id=str(uuid.uuid4()),
            user_id=f"user-{number:08d}",
            feature_key="ai_tokens",
            dimension_value=None,
            amount_micros=5_000_000,
            effective_from=NOW,
            expires_at=NOW + timedelta(days=30),
            reason=f"Top-up bought on invoice 2026-{number:08d}"[:40],
            granted_by="ops-admin",
            granted_at=NOW,
            voided_at=None,
            voided_by=None,
        )
        for number in range(count)
    ]


def main() -> None:
    """Print bytes per held grant and the lookup's cost as a ratio to a dict lookup."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    gc.collect()
    tracemalloc.start()
    grants = _grants(args.grants)
    # The first user holds a second grant: the lookup of a user with two.
    grants.append(replace(grants[0], grant_id=str(uuid.uuid4())))
    store = GrantStore(lambda: NOW)
    store._rebuild(grants, NOW)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del grants
    index, two = store._index, "user-00000000"
    baseline = timeit.timeit(lambda: index.get("nobody"), number=args.calls)
    empty = timeit.timeit(lambda: store.active("nobody", "ai_tokens", NOW), number=args.calls)
    granted = timeit.timeit(lambda: store.active(two, "ai_tokens", NOW), number=args.calls)
    print(f"held grants: {store.held()}, {held / store.held():.0f} bytes per grant")
    print(f"active(), no grants: {empty / baseline:.1f}x a dict.get; two grants: {granted / baseline:.1f}x")


if __name__ == "__main__":
    main()
