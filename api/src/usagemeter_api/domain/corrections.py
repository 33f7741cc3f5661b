"""Corrections: signed quantities an admin adds to a user's usage, never deleted (undo one with its opposite).

A correction is a row of ``usage_corrections``; materialized views add it to every usage rollup (its
feature total and, when it names one, its dimension value), so quotas, the usage page, the in-memory
view and Grafana count it while the raw telemetry stays as received. Each insert carries a
deduplication token derived from the correction's id, which a retried request derives again from its
``Idempotency-Key``, so a retry never counts twice: the table and its views drop the repeated block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from usagemeter_api.core.clock import epoch_ms, read_utc
from usagemeter_api.quantity import as_decimal, micros_of_decimal
from usagemeter_clickhouse import Client, tables

__all__ = ["Correction", "CorrectionPage", "insert_settings", "list_corrections", "record_correction"]

_COLUMNS = [
    "CorrectionId",
    "UserId",
    "FeatureKey",
    "DimensionKey",
    "DimensionValue",
    "OccurredAt",
    "Quantity",
    "Reason",
    "RecordedBy",
    "RecordedAt",
]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {tables.USAGE_CORRECTIONS}"
_BY_ID_SQL = (
    f"{_SELECT} WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}} AND CorrectionId = {{cid:UUID}}"
)


@dataclass(frozen=True, slots=True)
class Correction:
    """A signed quantity added to a user's usage of a feature (and of one dimension value) at ``occurred_at``."""

    correction_id: str
    user_id: str
    feature_key: str
    dimension_key: str | None
    dimension_value: str | None
    occurred_at: datetime
    amount_micros: int
    reason: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CorrectionPage:
    """Corrections newest recorded first, and the cursor of the next page (None on the last)."""

    corrections: list[Correction]
    next_cursor: tuple[datetime, str] | None


def record_correction(client: Client, correction: Correction) -> Correction:
    """Insert ``correction`` once; the one recorded before with the same id is returned instead."""
    existing = _find(client, correction)
    if existing is not None:
        return existing
    settings = insert_settings(correction)
    client.insert(tables.USAGE_CORRECTIONS, [_row(correction)], column_names=_COLUMNS, settings=settings)
    return correction


def insert_settings(correction: Correction) -> dict[str, object]:
    """The settings of ``correction``'s insert: a repeat of it is dropped by the table and by every rollup view."""
    return {
        "insert_deduplication_token": f"correction:{correction.correction_id}",
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def list_corrections(
    client: Client,
    *,
    user_id: str | None = None,
    feature_key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after: tuple[datetime, str] | None = None,
) -> CorrectionPage:
    """Corrections matching the filters (``since <= occurred_at < until``), newest recorded first."""
    conditions = ["1"]
    parameters: dict[str, object] = {"limit": limit + 1}
    for name, value, condition in (
        ("user", user_id, "UserId = {user:String}"),
        ("feature", feature_key, "FeatureKey = {feature:String}"),
        ("since", None if since is None else epoch_ms(since), "OccurredAt >= fromUnixTimestamp64Milli({since:Int64})"),
        ("until", None if until is None else epoch_ms(until), "OccurredAt < fromUnixTimestamp64Milli({until:Int64})"),
    ):
        if value is not None:
            conditions.append(condition)
            parameters[name] = value
    if after is not None:
        conditions.append("(RecordedAt, CorrectionId) < (fromUnixTimestamp64Milli({at:Int64}), {cid:UUID})")
        parameters |= {"at": epoch_ms(after[0]), "cid": after[1]}
    where = " AND ".join(conditions)
    sql = f"{_SELECT} WHERE {where} ORDER BY RecordedAt DESC, CorrectionId DESC LIMIT {{limit:UInt32}}"
    found = [_from_row(row) for row in client.query(sql, parameters=parameters).result_rows]
    page = found[:limit]
    return CorrectionPage(page, (page[-1].recorded_at, page[-1].correction_id) if len(found) > limit else None)


def _find(client: Client, correction: Correction) -> Correction | None:
    parameters = {"user": correction.user_id, "feature": correction.feature_key, "cid": correction.correction_id}
    rows = client.query(_BY_ID_SQL, parameters=parameters).result_rows
    return _from_row(rows[0]) if rows else None


def _row(correction: Correction) -> list[object]:
    return [
        UUID(correction.correction_id),
        correction.user_id,
        correction.feature_key,
        correction.dimension_key or "",
        correction.dimension_value or "",
        correction.occurred_at,
        as_decimal(correction.amount_micros),
        correction.reason,
        correction.recorded_by,
        correction.recorded_at,
    ]


def _from_row(row: Sequence[Any]) -> Correction:
    cid, user, feature, key, value, occurred_at, quantity, reason, by, at = row
    return Correction(
        correction_id=str(cid),
        user_id=user,
        feature_key=feature,
        dimension_key=key or None,
        dimension_value=value or None,
        occurred_at=read_utc(occurred_at),
        amount_micros=micros_of_decimal(quantity),
        reason=reason,
        recorded_by=by,
        recorded_at=read_utc(at),
    )
