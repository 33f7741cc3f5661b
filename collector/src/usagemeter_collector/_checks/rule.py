"""The ``feature.usage`` rule: what a metrics data point must satisfy to be stored, and why one is refused.

Every point's timestamps must lie in the accepted :class:`TimeWindow` and its exemplars' times fit a
column. A ``feature.usage`` point must also belong to a monotonic sum with a delta or cumulative
temporality, carry a finite, non-negative value of at most the per-point maximum, and both ``user.id``
and ``feature.key``, non-empty and within the id length limit (:class:`PointRules`). This module is the
rule's one statement, with its reasons; the row path applies it as written, and the faster paths
(``lean_pass``, ``bulk_points``, ``in_place``) restate it in vectorised or byte form, each naming the
tests that pin it to this one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from usagemeter_clickhouse import tables

#: The largest ``feature.usage`` value a point may carry: an exact integer in a Float64, and a billion such points
#: still sum to a finite total.
DEFAULT_MAX_POINT_VALUE = 1e15
#: The longest ``user.id`` or ``feature.key``, in bytes of its stored text.
DEFAULT_MAX_ID_BYTES = 256
#: The latest nanosecond timestamp a DateTime64(9) column holds: a later one does not fit its Int64.
LATEST_STORABLE_NS = 2**63 - 1

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE

TOO_OLD = "timestamp older than the raw data retention"
TOO_FAR_AHEAD = "timestamp too far in the future"
EXEMPLAR_TIME_UNSTORABLE = "exemplar timestamp out of range"
NOT_MONOTONIC = f"{tables.USAGE_METRIC} must be a monotonic sum"
NO_TEMPORALITY = f"{tables.USAGE_METRIC} needs delta or cumulative aggregation temporality"
NOT_FINITE = f"{tables.USAGE_METRIC} value must be finite"
NEGATIVE = f"{tables.USAGE_METRIC} value must not be negative"


def too_large(max_value: float) -> str:
    """The reason a ``feature.usage`` value above ``max_value`` is refused."""
    return f"{tables.USAGE_METRIC} value must not exceed {max_value:.15g}"


def id_missing(name: str) -> str:
    """The reason a ``feature.usage`` point without the id attribute ``name`` (or with it empty) is refused."""
    return f"{tables.USAGE_METRIC} data point lacks attribute {name}"


def id_too_long(name: str, max_id_bytes: int) -> str:
    """The reason a ``feature.usage`` point whose id ``name`` is longer than ``max_id_bytes`` is refused."""
    return f"{tables.USAGE_METRIC} attribute {name} is longer than {max_id_bytes} bytes"


class TimeWindow(NamedTuple):
    """The accepted range of point timestamps, in Unix nanoseconds."""

    earliest: int
    latest: int

    @classmethod
    def around_now(cls, retention_days: int, max_future_seconds: int) -> TimeWindow:
        """From the start of raw retention to ``max_future_seconds`` ahead."""
        now = time.time_ns()
        return cls(now - retention_days * 86_400 * 10**9, now + max_future_seconds * 10**9)

    def problem(self, start_ns: int, time_ns: int) -> str | None:
        """Why a point with these timestamps is refused, or None when it is in range."""
        if time_ns < self.earliest:
            return TOO_OLD
        if time_ns > self.latest or start_ns > self.latest:
            return TOO_FAR_AHEAD
        return None


class PointRules(NamedTuple):
    """What a data point must satisfy to be stored: timestamps in ``window`` and, for ``feature.usage``,
    a value of at most ``max_value`` and ids of at most ``max_id_bytes``."""

    window: TimeWindow
    max_value: float = DEFAULT_MAX_POINT_VALUE
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES


def any_unstorable_time(stamped: Iterable[Any]) -> bool:
    """Whether any of ``stamped`` (exemplars, span events) has a ``time_unix_nano`` no column can hold."""
    return any(item.time_unix_nano > LATEST_STORABLE_NS for item in stamped)


def exemplars_problem(exemplars: Sequence[Any]) -> str | None:
    """Why a point with these exemplars cannot be stored, or None when it can."""
    if exemplars and any_unstorable_time(exemplars):
        return EXEMPLAR_TIME_UNSTORABLE
    return None


def value_problem(value: float, monotonic: bool, temporality: int, max_value: float) -> str | None:
    """Why a ``feature.usage`` value of a sum with this shape cannot be metered, or None when it can."""
    if not monotonic:
        return NOT_MONOTONIC
    if temporality not in (_DELTA, _CUMULATIVE):
        return NO_TEMPORALITY
    if not math.isfinite(value):
        return NOT_FINITE
    if value < 0:
        return NEGATIVE
    if value > max_value:
        # A cap per point keeps every sum of points finite and exact.
        return too_large(max_value)
    return None


def attributes_problem(user_bytes: int, feature_bytes: int, max_id_bytes: int) -> str | None:
    """Why a ``feature.usage`` point whose ids render to these lengths (0: missing or empty) cannot be metered."""
    for name, size in ((tables.USER_ATTRIBUTE, user_bytes), (tables.FEATURE_ATTRIBUTE, feature_bytes)):
        if not size:
            return id_missing(name)
        if size > max_id_bytes:
            return id_too_long(name, max_id_bytes)
    return None
