"""End to end: fractional quantities reach ClickHouse through the real collector as the exact decimals."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import pytest

import usagemeter_instrumentation as usagemeter
from tests.collector import conftest as collector_fixtures
from tests.collector.conftest import DrainedClient
from usagemeter_clickhouse import tables
from usagemeter_collector import Collector

clickhouse = collector_fixtures.clickhouse
loop_thread = collector_fixtures.loop_thread
start_collector = collector_fixtures.start_collector

USERS = 400


def tricky_micros(count: int) -> list[int]:
    """Micro-unit totals whose nearest double, scaled back and truncated, misses by one micro-unit."""
    found = []
    micros = 0
    while len(found) < count:
        micros += 1
        if math.trunc(micros / 10**6 * 10**6) != micros:
            found.append(micros)
    return found


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_fractional_quantities_read_back_from_clickhouse_as_the_exact_decimals(
    protocol: str, start_collector: Callable[..., Collector], clickhouse: DrainedClient
) -> None:
    collector = start_collector()
    port = collector.grpc_port if protocol == "grpc" else collector.http_port
    usagemeter.configure("e2e-host", f"http://127.0.0.1:{port}", protocol=protocol, export_interval_millis=600_000)
    # Large totals too: up to where a double still resolves a micro-unit, beyond it, and the per-point maximum.
    large = [4_294_967_295_999_999, 8_589_934_591_999_999, 123_456_789_012_345, 2**40 * 10**6 + 500_000, 10**18]
    totals = tricky_micros(USERS - len(large)) + large
    expected: dict[str, Decimal] = {}
    for index, micros in enumerate(totals):
        user = f"user-{index}"
        # Two uses per user: the tally sums them exactly before the point is sent.
        first = micros // 2
        for part in (first, micros - first):
            usagemeter.track_feature_use("credits", user, _as_amount(part))
        expected[user] = Decimal(micros).scaleb(-6)
    usagemeter.track_feature_use("chat", "user-0", 0.1)
    usagemeter.track_feature_use("chat", "user-0", 0.2)
    assert usagemeter.force_flush(10_000)
    usagemeter.shutdown()

    rows = clickhouse.query(
        f"SELECT Attributes['{tables.USER_ATTRIBUTE}'] AS user, Attributes['{tables.FEATURE_ATTRIBUTE}'] AS feature,"
        f" toString(sum(toDecimal128(Value, 6))) FROM {tables.METRICS_SUM}"
        f" WHERE MetricName = '{tables.USAGE_METRIC}' GROUP BY user, feature"
    ).result_rows
    stored = {(user, feature): Decimal(total) for user, feature, total in rows}
    assert stored.pop(("user-0", "chat")) == Decimal("0.3")
    assert stored == {(user, "credits"): total for user, total in expected.items()}


def _as_amount(micros: int) -> int | float:
    """A host's amount for ``micros``: an int when whole, else the float of its decimal spelling."""
    units, fraction = divmod(micros, 10**6)
    return units if not fraction else float(f"{units}.{fraction:06d}")
