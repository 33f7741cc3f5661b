"""System health (ClickHouse, ingest freshness, workers) and conversion totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from usagemeter_api.ops_schemas import (
    Conversions,
    ConversionTotals,
    HealthDetails,
    ServiceHealth,
    Status,
    WorkersReport,
)
from usagemeter_api.usage import as_number
from usagemeter_clickhouse import Client, tables

__all__ = ["conversions", "health_details", "newest_point"]

# Only the last two days' partitions are read: older data is stale whatever it holds.
_NEWEST_SQL = f"""
SELECT max(newest) FROM (
    SELECT max(TimeUnix) AS newest FROM {tables.METRICS_SUM} WHERE TimeUnix >= {{since:DateTime('UTC')}}
    UNION ALL SELECT max(TimeUnix) FROM {tables.METRICS_GAUGE} WHERE TimeUnix >= {{since:DateTime('UTC')}}
    UNION ALL SELECT max(Timestamp) FROM {tables.TRACES} WHERE Timestamp >= {{since:DateTime('UTC')}}
)
"""
_CONVERSIONS_SQL = f"""
SELECT ConversionName, sum(Conversions), sumIf(Conversions, Day >= {{month_start:Date}})
FROM {tables.CONVERSIONS_DAY}
GROUP BY ConversionName ORDER BY ConversionName
"""


def newest_point(client: Client, now: datetime) -> datetime | None:
    """When the newest raw metric point or span stored in the last two days was taken; None when there is none."""
    since = now.astimezone(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    value = client.query(_NEWEST_SQL, parameters={"since": since}).result_rows[0][0]
    if value is None or value.timestamp() <= 0:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def health_details(
    newest: datetime | None, now: datetime, stale_after_seconds: float, workers: WorkersReport
) -> HealthDetails:
    """ClickHouse (which answered), ingest freshness and each worker instance as services."""
    age = None if newest is None else max((now - newest).total_seconds(), 0.0)
    services = [
        ServiceHealth(name="clickhouse", status="healthy", detail="answers queries"),
        _ingest(age, stale_after_seconds),
    ]
    services += [
        ServiceHealth(
            name=f"worker {item.worker_id} ({item.queue})",
            status=item.status,
            detail="; ".join(item.reasons) or f"heartbeat {item.heartbeat_age_seconds:.0f} s old",
        )
        for item in workers.workers
    ]
    healthy = sum(service.status == "healthy" for service in services)
    worst: Status = "healthy" if healthy == len(services) else ("down" if services[1].status == "down" else "degraded")
    return HealthDetails(
        status=worst,
        summary=f"{healthy}/{len(services)} services healthy",
        healthy=healthy,
        total=len(services),
        newest_point_age_seconds=None if age is None else round(age, 3),
        services=services,
    )


def _ingest(age: float | None, stale_after_seconds: float) -> ServiceHealth:
    if age is None:
        return ServiceHealth(name="ingest", status="down", detail="no point stored in the last two days")
    if age > stale_after_seconds:
        return ServiceHealth(
            name="ingest", status="down", detail=f"newest point {age:.0f} s old (stale after {stale_after_seconds:g} s)"
        )
    return ServiceHealth(name="ingest", status="healthy", detail=f"newest point {age:.1f} s old")


def conversions(client: Client, now: datetime) -> Conversions:
    """Conversions from ``conversion.count`` points, all time and this calendar month, per name."""
    month_start = now.astimezone(UTC).date().replace(day=1)
    rows = client.query(_CONVERSIONS_SQL, parameters={"month_start": month_start}).result_rows
    by_name = {
        str(name): ConversionTotals(total=as_number(total), this_month=as_number(month)) for name, total, month in rows
    }
    return Conversions(
        total=as_number(sum(float(total) for _, total, _ in rows)),
        this_month=as_number(sum(float(month) for _, _, month in rows)),
        by_name=by_name,
    )
