"""Request and response bodies of grants (extra allowance) and corrections (signed usage adjustments)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

__all__ = [
    "CorrectionBody",
    "CorrectionInfo",
    "CorrectionList",
    "GrantBody",
    "GrantInfo",
    "GrantList",
    "VoidBody",
]

#: The largest amount a grant or correction may name (as for limits): sums of a few still fit an int64 of micros.
_MAX_UNITS = 10**12


def _to_the_millisecond(moment: datetime) -> datetime:
    # Times are stored as DateTime64(3): a finer one would be cut behind its writer's back.
    if moment.microsecond % 1000:
        raise ValueError("times are kept to the millisecond; give at most 3 decimals of seconds")
    return moment


def _not_zero(amount: Decimal) -> Decimal:
    if amount == 0:
        raise ValueError("a correction of 0 changes nothing")
    return amount


Moment = Annotated[AwareDatetime, AfterValidator(_to_the_millisecond)]
UserId = Annotated[str, Field(min_length=1, max_length=256)]
FeatureKey = Annotated[str, Field(min_length=1, max_length=128)]
DimensionText = Annotated[str, Field(min_length=1, max_length=128)]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why, for the audit trail.")]
GrantStatus = Literal["active", "scheduled", "expired", "voided"]

_GRANT_BODY: JsonDict = {
    "user_id": "user-123",
    "feature_key": "ai_tokens",
    "amount": 250_000,
    "expires_at": "2026-12-31T00:00:00Z",
    "reason": "Top-up bought on invoice 2026-118",
    "dimension_value": "gpt-4o",
}
_GRANT: JsonDict = {
    "grant_id": "0b8f6f0e-3c55-5d2e-9d0a-6f1f4f3f2a11",
    "user_id": "user-123",
    "feature_key": "ai_tokens",
    "dimension_value": "gpt-4o",
    "amount": 250_000,
    "effective_from": "2026-12-01T09:30:00Z",
    "expires_at": "2026-12-31T00:00:00Z",
    "reason": "Top-up bought on invoice 2026-118",
    "granted_by": "ops-admin",
    "granted_at": "2026-12-01T09:30:00Z",
    "voided_at": None,
    "voided_by": None,
    "void_reason": None,
    "status": "active",
}
_CORRECTION_BODY: JsonDict = {
    "user_id": "user-123",
    "feature_key": "ai_tokens",
    "amount": -1200.5,
    "occurred_at": "2026-12-01T08:15:00Z",
    "reason": "Retried job metered twice",
    "dimension_key": "model",
    "dimension_value": "gpt-4o",
}
_CORRECTION: JsonDict = {
    "correction_id": "7d4f0c52-4a3e-5b8c-8f43-0c9e2a7e1b55",
    **_CORRECTION_BODY,
    "recorded_by": "ops-admin",
    "recorded_at": "2026-12-01T09:31:00Z",
}


class GrantBody(BaseModel):
    """Extra allowance of a feature for a user: each matching limit is raised by ``amount`` while it is active."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_GRANT_BODY]})

    user_id: UserId
    feature_key: FeatureKey
    amount: Decimal = Field(
        gt=0, le=_MAX_UNITS, decimal_places=6, description="In the feature's unit, at most 6 decimals."
    )
    effective_from: Moment | None = Field(default=None, description="When it starts to count (default: now).")
    expires_at: Moment | None = Field(default=None, description="When it stops counting (exclusive); none: never.")
    reason: Reason
    dimension_value: DimensionText | None = Field(
        default=None, description="Raise only the limits of this value of the feature's dimension."
    )

    @model_validator(mode="after")
    def _expires_after_it_starts(self) -> GrantBody:
        if self.effective_from and self.expires_at and self.expires_at <= self.effective_from:
            raise ValueError("expires_at must be after effective_from")
        return self


class GrantInfo(BaseModel):
    """A recorded grant, who granted it and when, and where it stands now."""

    model_config = ConfigDict(json_schema_extra={"examples": [_GRANT]})

    grant_id: str
    user_id: str
    feature_key: str
    dimension_value: str | None
    amount: int | float
    effective_from: datetime
    expires_at: datetime | None
    reason: str
    granted_by: str = Field(description="The `sub` of the admin token that granted it.")
    granted_at: datetime
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None = Field(description="Why the grant was voided; null while it is not.")
    status: GrantStatus


class GrantList(BaseModel):
    """Grants newest first; ask for ``next_cursor`` (as ``cursor``) for the next page."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"grants": [_GRANT], "next_cursor": None}]})

    grants: list[GrantInfo]
    next_cursor: str | None


class VoidBody(BaseModel):
    """Why a grant is voided."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "Granted to the wrong user"}]})

    reason: Reason


class CorrectionBody(BaseModel):
    """A signed amount added to a user's usage of a feature at ``occurred_at``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CORRECTION_BODY]})

    user_id: UserId
    feature_key: FeatureKey
    amount: Annotated[
        Decimal,
        Field(ge=-_MAX_UNITS, le=_MAX_UNITS, decimal_places=6, description="Signed, not 0, at most 6 decimals."),
        AfterValidator(_not_zero),
    ]
    occurred_at: Moment | None = Field(
        default=None, description="The moment it counts at (default: now); within the rollup retention."
    )
    reason: Reason
    dimension_key: DimensionText | None = Field(default=None, description="An allow-listed dimension attribute.")
    dimension_value: DimensionText | None = None

    @model_validator(mode="after")
    def _dimension_in_full(self) -> CorrectionBody:
        if (self.dimension_key is None) != (self.dimension_value is None):
            raise ValueError("give both dimension_key and dimension_value, or neither")
        return self


class CorrectionInfo(BaseModel):
    """A recorded correction, who recorded it and when."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CORRECTION]})

    correction_id: str
    user_id: str
    feature_key: str
    amount: int | float
    occurred_at: datetime
    reason: str
    dimension_key: str | None
    dimension_value: str | None
    recorded_by: str = Field(description="The `sub` of the admin token that recorded it.")
    recorded_at: datetime


class CorrectionList(BaseModel):
    """Corrections newest recorded first; ask for ``next_cursor`` (as ``cursor``) for the next page."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"corrections": [_CORRECTION], "next_cursor": None}]})

    corrections: list[CorrectionInfo]
    next_cursor: str | None
