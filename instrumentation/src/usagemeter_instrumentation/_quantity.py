"""Exact quantities: whole amounts stay ``int``; fractional ones are integers of micro-units (6 decimals).

A tally entry is an ``int`` of units while every amount added to it was whole, and a :class:`Micros`
once a fractional one was, so the plain count never pays for fractions and a sum of fractions never
goes through floats. :func:`exported` turns an entry into the value of one OTLP data point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

MICROS_PER_UNIT = 10**6
#: The largest amount of one call: the collector's default per-point maximum (``USAGEMETER_MAX_POINT_VALUE``).
MAX_AMOUNT = 10**15
#: The most one data point carries. ClickHouse's ``toDecimal128(Value, 6)`` scales the Float64 by 10**6 in
#: floating point, which is exact for whole values below 2**39; a larger total goes over several collections.
MAX_POINT_UNITS = 5 * 10**11
_MAX_POINT_MICROS = MAX_POINT_UNITS * MICROS_PER_UNIT
# Below 2**20 units a float scaled by 10**6 is off its shortest decimal's micro-units by under 2e-4.
_QUICK_LIMIT = float(2**20)
# Below 2**32 units the double chosen for a fraction reads back exactly, through the Float64 or its text.
_EXACT_FRACTION_LIMIT = 2**32 * MICROS_PER_UNIT


class Micros:
    """A quantity held as an exact integer of micro-units; adding an ``int`` adds whole units."""

    __slots__ = ("micros",)

    def __init__(self, micros: int) -> None:
        self.micros = micros

    def __add__(self, other: int | Micros) -> Micros:
        if isinstance(other, Micros):
            return Micros(self.micros + other.micros)
        return Micros(self.micros + other * MICROS_PER_UNIT)

    __radd__ = __add__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Micros):
            return self.micros == other.micros
        if isinstance(other, int | float):
            return Fraction(self.micros, MICROS_PER_UNIT) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(Fraction(self.micros, MICROS_PER_UNIT))

    def __lt__(self, other: int | Micros) -> bool:
        return self.micros < _micros_of(other)

    def __le__(self, other: int | Micros) -> bool:
        return self.micros <= _micros_of(other)

    def __gt__(self, other: int | Micros) -> bool:
        return self.micros > _micros_of(other)

    def __ge__(self, other: int | Micros) -> bool:
        return self.micros >= _micros_of(other)

    def __bool__(self) -> bool:
        return self.micros != 0

    def __str__(self) -> str:
        units, fraction = divmod(self.micros, MICROS_PER_UNIT)
        return f"{units}.{fraction:06d}".rstrip("0").rstrip(".")

    def __repr__(self) -> str:
        return f"Micros({self.micros})"


Amount = int | Micros


def _micros_of(amount: Amount) -> int:
    return amount.micros if isinstance(amount, Micros) else amount * MICROS_PER_UNIT


def total(amounts: Iterable[Amount]) -> Amount:
    """The exact sum of ``amounts``: an ``int`` when every one is."""
    result: Amount = 0
    for amount in amounts:
        result = result + amount
    return result


def amount_problem(amount: object) -> str | None:
    """Why ``amount`` cannot be metered, or ``None`` when it can."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return f"amount must be an int or a float, got {type(amount).__name__}"
    if isinstance(amount, float) and not math.isfinite(amount):
        return f"amount must be finite, got {amount!r}"
    if amount < 0:
        return f"amount must not be negative, got {amount!r}"
    if amount > MAX_AMOUNT:
        return f"amount must not exceed {MAX_AMOUNT:.0e}, got {amount!r}"
    return None


def tally_amount(amount: int | float) -> Amount:
    """The tally entry of a valid amount: ints as they are, a float rounded to 6 decimals.

    The float is rounded (half up) from its shortest decimal spelling, so ``0.1`` is 100000 micro-units
    and ``0.0000005`` is 1.
    """
    if isinstance(amount, int):
        return amount
    if amount.is_integer():
        return int(amount)
    if amount < _QUICK_LIMIT:
        scaled = amount * MICROS_PER_UNIT
        micros = round(scaled)
        # Below the limit the float product is within 2e-4 of the decimal's: away from a half it rounds alike.
        if abs(scaled - micros) < 0.499:
            return Micros(micros)
    return Micros(math.floor(Fraction(repr(amount)) * MICROS_PER_UNIT + Fraction(1, 2)))


def from_point(value: int | float) -> Amount:
    """The tally entry of an exported data point's value (the inverse of :func:`exported`)."""
    if isinstance(value, int):
        return value
    return Micros(round(Fraction(value) * MICROS_PER_UNIT))


def exported(amount: Amount) -> tuple[int | float, Amount]:
    """The value of the data point for ``amount``, and what is left for the next collection (often 0).

    A point carries at most :data:`MAX_POINT_UNITS`; whole quantities go as ints; a fraction goes as the
    smallest double that ClickHouse's ``toDecimal128(Value, 6)`` (which truncates) reads back as the
    exact decimal, and beyond where a double holds six decimals, its whole part now and the fraction later.
    """
    micros = _micros_of(amount)
    if micros > _MAX_POINT_MICROS:
        return MAX_POINT_UNITS, _rest(micros - _MAX_POINT_MICROS, amount)
    units, fraction = divmod(micros, MICROS_PER_UNIT)
    if not fraction:
        return units, 0
    if micros >= _EXACT_FRACTION_LIMIT:
        return units, Micros(fraction)
    return _decimal_double(micros), 0


def _rest(micros: int, amount: Amount) -> Amount:
    return micros // MICROS_PER_UNIT if isinstance(amount, int) else Micros(micros)


def _decimal_double(micros: int) -> float:
    value = micros / MICROS_PER_UNIT
    while value * MICROS_PER_UNIT < micros:  # at most a step or two of one ulp
        value = math.nextafter(value, math.inf)
    return value
