"""What a usage total is of: a feature's total, or the part of it with one value of a dimension attribute."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Slice"]


@dataclass(frozen=True, slots=True)
class Slice:
    """A feature's total (``dimension_key == ''``), or its usage with one value of a dimension attribute.

    The rollups keep both kinds of rows under the same names (``DimensionKey``, ``DimensionValue``).
    """

    feature_key: str
    dimension_key: str = ""
    dimension_value: str = ""

    @classmethod
    def total(cls, feature_key: str) -> Slice:
        """The feature's total."""
        return cls(feature_key)
