"""In-process tallies: the hot path only bumps a dict entry; the SDK sees the totals once per collection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.util.types import AttributeValue

from usagemeter_instrumentation._quantity import Amount, exported, total

Attributes = dict[str, AttributeValue]
# The values of ``names`` in order, then (with ``extra``) sorted (name, value) pairs of further attributes.
Key = tuple[AttributeValue | tuple[str, str], ...]


class Tally:
    """Exact counts (or quantities, see :mod:`._quantity`) per attribute set, drained in bounded batches.

    ``names`` are the attribute names of a key, in order; without names a key is the sorted tuple
    of its attribute items, for instruments whose attribute sets vary. With ``extra``, a key may carry
    sorted (name, value) items of further attributes after the named ones. At most ``max_pending`` distinct keys
    wait between collections, less the series :meth:`reserve` set aside for a failed export kept for
    resending; uses of further keys are dropped and counted in ``dropped``, so an exporter outage cannot
    grow the process without bound.
    """

    def __init__(self, names: tuple[str, ...], max_pending: int, *, extra: bool = False) -> None:
        self.names = names
        self.max_pending = max_pending
        self.extra = extra
        self.dropped: Amount = 0
        self._unreported_drops: Amount = 0
        self._reserved = 0
        self._counts: dict[Key, Amount] = {}
        self._lock = threading.Lock()

    def add(self, key: Key, amount: Amount = 1) -> None:
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

    def drop(self, amount: Amount) -> None:
        """Count ``amount`` as refused, e.g. the uses of a failed export that could not be kept."""
        with self._lock:
            self._drop(amount)

    def take_drops(self) -> Amount:
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

    def drain(self, limit: int) -> list[tuple[Key, Amount]]:
        """Take out up to ``limit`` keys with their counts; the rest stay for the next collection."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if len(counts) <= limit:
            return list(counts.items())
        items = list(counts.items())
        self.restore(items[limit:])
        return items[:limit]

    def restore(self, items: Iterable[tuple[Key, Amount]]) -> None:
        """Put counts back, e.g. those of an export that failed."""
        for key, amount in items:
            self.add(key, amount)

    def pending(self) -> Amount:
        """Uses (or quantity) counted but not yet handed to the SDK."""
        with self._lock:
            return total(self._counts.values())

    def _drop(self, amount: Amount) -> None:
        self.dropped += amount
        self._unreported_drops += amount

    def attributes(self, key: Key) -> Attributes:
        """The metric attributes of ``key``."""
        if not self.names:
            return dict(key)  # type: ignore[arg-type]
        # zip stops at the named values; the (name, value) items after them are added as they are.
        result = {name: value for name, value in zip(self.names, key, strict=False) if value is not None}
        if len(key) > len(self.names):
            result.update(key[len(self.names) :])  # type: ignore[arg-type]
        return result  # type: ignore[return-value]

    def key_of(self, attributes: Mapping[str, AttributeValue]) -> Key:
        """The key of a data point's attributes (the inverse of :meth:`attributes`)."""
        if not self.names:
            return tuple(sorted(attributes.items()))
        named: Key = tuple(attributes.get(name) for name in self.names)
        if not self.extra:
            return named
        others = sorted((name, str(value)) for name, value in attributes.items() if name not in self.names)
        return named + tuple(others)


FlushTarget = Callable[[int | float, Attributes], None]


def flush_into(tally: Tally, add: FlushTarget, limit: int) -> None:
    """Hand up to ``limit`` series of ``tally`` to an SDK counter's ``add``.

    A series whose total one data point cannot carry exactly hands over what it can; the rest waits
    in the tally for the next collection.
    """
    left: list[tuple[Key, Amount]] = []
    for key, amount in tally.drain(limit):
        value, rest = exported(amount)
        add(value, tally.attributes(key))
        if rest:
            left.append((key, rest))
    if left:
        tally.restore(left)
