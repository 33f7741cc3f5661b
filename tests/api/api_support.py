"""Helpers for the API tests: the injected clock, real tokens and real usage rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from usagemeter_api import mint_token
from usagemeter_clickhouse import Client, tables

SECRET = "api-test-secret-0123456789abcdef-0123456789"

# The injected clock sits mid-month in the current real month, so test data stays well inside
# the rollups' retention whatever day the suite runs.
NOW = datetime.now(UTC).replace(day=15, hour=12, minute=0, second=0, microsecond=0)
MONTH_START = NOW.replace(day=1, hour=0)
NEXT_MONTH_START = (MONTH_START + timedelta(days=32)).replace(day=1)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ["ServiceName", "MetricName", "Attributes", "TimeUnix", "Value", "AggregationTemporality", "IsMonotonic"]


def bearer(
    user_id: str, *, admin: bool = False, secret: str = SECRET, audience: str | None = None, issuer: str | None = None
) -> dict[str, str]:
    """Headers carrying a freshly minted token for ``user_id``."""
    token = mint_token(secret, user_id, admin=admin, audience=audience, issuer=issuer)
    return {"Authorization": f"Bearer {token}"}


def ns(moment: datetime) -> int:
    """Integer nanoseconds since the epoch, the fast insert form of TimeUnix."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def record_usage(
    client: Client,
    uses: Sequence[tuple[str, str, datetime, float]],
    service: str = "web",
    token: str | None = None,
    **attributes: str,
) -> None:
    """Insert delta ``feature.usage`` points (user, feature, time, value) as an OTLP sender's would arrive.

    With ``token`` the insert is deduplicated like the collector's retried ones; ``attributes`` go on every point.
    """
    rows = [
        [
            service,
            tables.USAGE_METRIC,
            {tables.USER_ATTRIBUTE: user, tables.FEATURE_ATTRIBUTE: feature, **attributes},
            ns(at),
            value,
            1,
            True,
        ]
        for user, feature, at, value in uses
    ]
    settings = distinct_insert() if token is None else _retried_insert(token)
    client.insert(tables.METRICS_SUM, rows, column_names=_COLUMNS, settings=settings)


def _retried_insert(token: str) -> dict[str, object]:
    return {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}


def distinct_insert() -> dict[str, str]:
    """Insert settings that keep a block even when an identical one was inserted before.

    The raw tables deduplicate retried blocks; separate inserts of equal rows are separate uses.
    """
    return {"insert_deduplication_token": uuid.uuid4().hex}


_SPAN_COLUMNS = ["Timestamp", "TraceId", "SpanId", "SpanName", "ServiceName", "SpanAttributes"]


def record_spans(client: Client, spans: Sequence[tuple[datetime, dict[str, str]]], name: str = "feature.use") -> None:
    """Insert spans (time, attributes) named ``name`` as the OTLP exporter path stores them."""
    rows = [[ns(at), uuid.uuid4().hex, uuid.uuid4().hex[:16], name, "web", attributes] for at, attributes in spans]
    client.insert(tables.TRACES, rows, column_names=_SPAN_COLUMNS, settings=distinct_insert())
