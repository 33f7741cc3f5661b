"""Quantities as exact integers of micro-units: how the API counts usage, limits, grants and corrections.

ClickHouse sums usage as ``Decimal128(6)``; the API holds the same figures as ``int`` micro-units,
so every sum and comparison is exact. Answers show them as plain numbers in the feature's unit.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["MICROS_PER_UNIT", "QUANTITY_DECIMALS", "as_decimal", "from_micros", "micros_of_decimal", "to_micros"]

#: Decimal places a quantity keeps (the rollups' Decimal128 scale).
QUANTITY_DECIMALS = 6
MICROS_PER_UNIT = 10**QUANTITY_DECIMALS
_EXPONENT = Decimal(1).scaleb(-QUANTITY_DECIMALS)


def to_micros(value: object) -> int:
    """``value`` (an int, a float, a Decimal or a numeric string) as micro-units.

    ValueError when it is not a finite number or has more than six decimals: a limit or an
    amount is never rounded behind its writer's back. A float counts by its shortest repr,
    so ``0.1`` is 100000 micro-units.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value * MICROS_PER_UNIT
    try:
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not exact.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    scaled = exact.scaleb(QUANTITY_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} has more than {QUANTITY_DECIMALS} decimals")
    return int(scaled)


def micros_of_decimal(value: Decimal) -> int:
    """A ``Decimal`` read from a ``Decimal128(6)`` column as micro-units."""
    return int(value.scaleb(QUANTITY_DECIMALS).to_integral_value())


def from_micros(micros: int) -> int | float:
    """Micro-units as the number shown in the unit: an int when whole, else the nearest float."""
    whole, part = divmod(micros, MICROS_PER_UNIT)
    if part == 0:
        return whole
    return float(Decimal(micros).scaleb(-QUANTITY_DECIMALS))


def as_decimal(micros: int) -> Decimal:
    """Micro-units as an exact ``Decimal`` (for a ``Decimal128(6)`` column)."""
    return Decimal(micros).scaleb(-QUANTITY_DECIMALS).quantize(_EXPONENT)
