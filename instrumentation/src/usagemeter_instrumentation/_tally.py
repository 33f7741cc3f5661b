"""In-process tallies: the hot path only bumps a dict entry; the SDK sees the totals once per collection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.util.types import AttributeValue

Attributes = dict[str, AttributeValue]
Key = tuple[AttributeValue, ...]


class Tally:
    """Exact counts per attribute set, drained in bounded batches.

    ``names`` are the attribute names of a key, in order; without names a key is the sorted tuple
    of its attribute items, for instruments whose attribute sets vary. At most ``max_pending`` distinct keys
    wait between collections, less the series :meth:`reserve` set aside for a failed export kept for
    resending; uses of further keys are dropped and counted in ``dropped``, so an exporter outage cannot
    grow the process without bound.
    """

    def __init__(self, names: tuple[str, ...], max_pending: int) -> None:
        self.names = names
        self.max_pending = max_pending
        self.dropped = 0
        self._unreported_drops = 0
        self._reserved = 0
        self._counts: dict[Key, int] = {}
        self._lock = threading.Lock()

    def add(self, key: Key, amount: int = 1) -> None:
        """Add ``amount`` to the count of ``key``."""
        with self._lock:
            counts = self._counts
            current = counts.get(key)
            if current is not None:
                counts[key] = current + amount
            elif len(counts) + self._reserved < self.max_pending:
                counts[key] = amount
            else:
                self._drop(amount)

    def drop(self, amount: int) -> None:
        """Count ``amount`` as refused, e.g. the uses of a failed export that could not be kept."""
        with self._lock:
            self._drop(amount)

    def take_drops(self) -> int:
        """Drops counted since the last call, to be reported once."""
        with self._lock:
            drops, self._unreported_drops = self._unreported_drops, 0
            return drops

    def reserve(self, series: int) -> bool:
        """Set room for ``series`` aside under the bound; ``False`` (nothing reserved) when it is not there."""
        with self._lock:
            if len(self._counts) + self._reserved + series > self.max_pending:
                return False
            self._reserved += series
            return True

    def release(self, series: int) -> None:
        """Give back room taken by :meth:`reserve`."""
        with self._lock:
            self._reserved -= series

    def drain(self, limit: int) -> list[tuple[Key, int]]:
        """Take out up to ``limit`` keys with their counts; the rest stay for the next collection."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if len(counts) <= limit:
            return list(counts.items())
        items = list(counts.items())
        self.restore(items[limit:])
        return items[:limit]

    def restore(self, items: Iterable[tuple[Key, int]]) -> None:
        """Put counts back, e.g. those of an export that failed."""
        for key, amount in items:
            self.add(key, amount)

    def pending(self) -> int:
        """Uses counted but not yet handed to the SDK."""
        with self._lock:
            return sum(self._counts.values())

    def _drop(self, amount: int) -> None:
        self.dropped += amount
        self._unreported_drops += amount

    def attributes(self, key: Key) -> Attributes:
        """The metric attributes of ``key``."""
        if not self.names:
            return dict(key)  # type: ignore[arg-type]
        return {name: value for name, value in zip(self.names, key, strict=True) if value is not None}

    def key_of(self, attributes: Mapping[str, AttributeValue]) -> Key:
        """The key of a data point's attributes (the inverse of :meth:`attributes`)."""
        if not self.names:
            return tuple(sorted(attributes.items()))
        return tuple(attributes.get(name) for name in self.names)


FlushTarget = Callable[[int, Attributes], None]


def flush_into(tally: Tally, add: FlushTarget, limit: int) -> None:
    """Hand up to ``limit`` series of ``tally`` to an SDK counter's ``add``."""
    for key, amount in tally.drain(limit):
        add(amount, tally.attributes(key))
