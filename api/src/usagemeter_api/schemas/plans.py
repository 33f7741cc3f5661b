"""What a plan meters of one feature: its unit, its dimension attribute and its limits, each over a window.

These models are both the plans file's and the REST API's spelling of a feature's limits and the
catalog's own (``Plan.features``), so a plan reads, validates and writes back the same way everywhere.
Amounts are exact decimals (at most 6 places, :mod:`usagemeter_api.quantity`), written as numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from usagemeter_api.quantity import MICROS_PER_UNIT, as_decimal, from_micros, to_micros

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FEATURE_PLAN_EXAMPLE",
    "MAX_ROLLING_MINUTES",
    "Amount",
    "FeaturePlan",
    "LimitRule",
    "LimitWindow",
    "PeriodKind",
    "Threshold",
    "WindowKind",
    "parse_window",
    "shorthand",
]

#: The calendar period of a plan's shorthand limits, in UTC.
PeriodKind = Literal["day", "week", "month"]

#: ``day``/``week``/``month``: the UTC calendar period; ``cycle``: monthly from the user's assignment day;
#: ``lifetime``: everything ever counted; ``rolling``: the last N minutes, to the minute.
WindowKind = Literal["day", "week", "month", "cycle", "lifetime", "rolling"]
#: The longest rolling window: 31 days (the ingest rollup keeps a day more).
MAX_ROLLING_MINUTES = 31 * 24 * 60

_NAMED: frozenset[str] = frozenset({"day", "week", "month", "cycle", "lifetime"})
_ROLLING = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_MINUTES_PER = {"m": 1, "h": 60, "d": 24 * 60}
#: The largest amount a limit, grant or correction may name: every sum of a few still fits an int64 of micro-units.
_MAX_UNITS = 10**12


@dataclass(frozen=True, slots=True)
class LimitWindow:
    """The window a limit applies over; ``minutes`` is the length of a rolling one."""

    kind: WindowKind
    minutes: int | None = None

    @property
    def label(self) -> str:
        """The window as written: ``month``, ``cycle``, ``5h``, ``90m``, ``7d``."""
        if self.minutes is None:
            return self.kind
        for suffix, size in (("d", 24 * 60), ("h", 60)):
            if self.minutes % size == 0:
                return f"{self.minutes // size}{suffix}"
        return f"{self.minutes}m"


def parse_window(value: object) -> LimitWindow:
    """A window from its spelling (``day``, ``week``, ``month``, ``cycle``, ``lifetime``, ``90m``, ``5h``, ``7d``)."""
    if isinstance(value, LimitWindow):
        return value
    if isinstance(value, str) and value in _NAMED:
        return LimitWindow(value)  # type: ignore[arg-type]
    match = _ROLLING.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "window",
            "window must be day, week, month, cycle, lifetime or a rolling length like 90m, 5h or 7d; got {value}",
            {"value": repr(value)[:100]},
        )
    minutes = int(match[1]) * _MINUTES_PER[match[2]]
    if minutes > MAX_ROLLING_MINUTES:
        raise PydanticCustomError("window", "a rolling window is at most 31d long; got {value}", {"value": value})
    return LimitWindow("rolling", minutes)


def _parse_amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PydanticCustomError("amount", "must be a number, got {value}", {"value": repr(value)[:100]})
    try:
        micros = to_micros(value)
    except ValueError as exc:
        raise PydanticCustomError("amount", "{reason}", {"reason": str(exc)}) from None
    if not 0 <= micros <= _MAX_UNITS * MICROS_PER_UNIT:
        raise PydanticCustomError(
            "amount", "must be between 0 and {most}, got {value}", {"most": _MAX_UNITS, "value": value}
        )
    return as_decimal(micros)


#: A non-negative amount in the feature's unit (at most 6 decimals), written as a plain number.
Amount = Annotated[
    Decimal,
    PlainValidator(_parse_amount),
    PlainSerializer(lambda amount: from_micros(to_micros(amount)), return_type=int | float),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": _MAX_UNITS}),
]
WindowField = Annotated[
    LimitWindow,
    PlainValidator(parse_window),
    PlainSerializer(lambda window: window.label, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["month", "cycle", "lifetime", "5h", "7d"]}),
]
_Text = Annotated[str, Field(min_length=1, max_length=128)]


class LimitRule(BaseModel):
    """At most ``limit`` of the feature per ``window``: of its total, or of one ``dimension_value``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: WindowField
    limit: Amount = Field(description="The most the window allows, in the feature's unit.")
    dimension_value: _Text | None = Field(
        default=None, description="Limit only the usage whose dimension attribute has this value."
    )

    @cached_property
    def limit_micros(self) -> int:
        """``limit`` in micro-units."""
        return to_micros(self.limit)


#: AI tokens by model: per rolling 5 hours and 7 days in all, and per month on gpt-4o.
FEATURE_PLAN_EXAMPLE: JsonDict = {
    "unit": "tokens",
    "dimension": "model",
    "limits": [
        {"window": "5h", "limit": 1_000_000},
        {"window": "7d", "limit": 10_000_000},
        {"window": "month", "limit": 200_000, "dimension_value": "gpt-4o"},
    ],
}


class Threshold(BaseModel):
    """A level of a limit whose crossing is announced to webhook endpoints: a percent of it, or an amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Annotated[float, Field(gt=0, le=1000)] | None = Field(
        default=None,
        description="Percent of what the limit allows (with its grants); 100 is quota.exceeded.",
        exclude_if=lambda value: value is None,
    )
    amount: Amount | None = Field(
        default=None, description="An absolute amount in the feature's unit.", exclude_if=lambda value: value is None
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Threshold:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("a threshold is either a percent or an amount")
        return self

    @cached_property
    def amount_micros(self) -> int | None:
        """``amount`` in micro-units (None for a percent)."""
        return None if self.amount is None else to_micros(self.amount)


#: The thresholds of a feature that names none: 80 % (threshold_reached) and 100 % (exceeded).
DEFAULT_THRESHOLDS = (Threshold(percent=80), Threshold(percent=100))


class FeaturePlan(BaseModel):
    """How a plan meters one feature; no limits means metered and unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [FEATURE_PLAN_EXAMPLE]})

    unit: Annotated[str, Field(min_length=1, max_length=32)] = "uses"
    dimension: _Text | None = Field(
        default=None,
        description="The usage attribute dimension limits slice by (from USAGEMETER_DIMENSION_ATTRIBUTES).",
    )
    limits: tuple[LimitRule, ...] = Field(default=(), max_length=32)
    thresholds: tuple[Threshold, ...] | None = Field(
        default=None,
        max_length=10,
        # Left out when unset, so a plan without thresholds reads and writes as it did before them.
        exclude_if=lambda value: value is None,
        description="Levels of each limit announced to webhook endpoints when crossed; default 80 % and 100 %.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeaturePlan:
        seen: set[tuple[str, str | None]] = set()
        for rule in self.limits:
            if rule.dimension_value is not None and self.dimension is None:
                raise ValueError(f"limit {rule.window.label} names a dimension_value but the feature has no dimension")
            key = (rule.window.label, rule.dimension_value)
            if key in seen:
                raise ValueError(f"two limits over {rule.window.label} for the same usage")
            seen.add(key)
        return self

    def threshold_levels(self) -> tuple[Threshold, ...]:
        """The thresholds announced for each of this feature's limits."""
        return DEFAULT_THRESHOLDS if self.thresholds is None else self.thresholds

    def limits_for(self, dimension_value: str | None) -> list[LimitRule]:
        """The limits a use with ``dimension_value`` counts against: the feature's, and that value's."""
        return [rule for rule in self.limits if rule.dimension_value is None or rule.dimension_value == dimension_value]

    def dimension_values(self) -> list[str]:
        """The dimension values the plan limits, in first-seen order."""
        return list(dict.fromkeys(rule.dimension_value for rule in self.limits if rule.dimension_value is not None))


def shorthand(limit: object, period: PeriodKind) -> FeaturePlan:
    """The feature a shorthand limit (uses per period, ``None``/``"unlimited"`` for none) stands for."""
    if limit is None or limit == "unlimited":
        return FeaturePlan()
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise PydanticCustomError(
            "limit", 'must be a non-negative number or "unlimited", got {value}', {"value": repr(limit)[:100]}
        )
    return FeaturePlan(limits=(LimitRule(window=LimitWindow(period), limit=_parse_amount(limit)),))
