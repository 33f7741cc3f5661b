"""System health (ClickHouse, ingest freshness, workers) and conversion totals."""

from __future__ import annotations

from dataclasses import dataclass, field
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

__all__ = ["CollectorReport", "collector_reports", "conversions", "health_details", "newest_point"]

COLLECTOR_SERVICE = "usagemeter-collector"
SPOOL_BYTES_METRIC = "usagemeter.collector.spool_bytes"
#: Self-telemetry counters whose growth in the last hour makes a collector degraded, and how they read.
SPOOL_FAILURE_METRICS = {
    "usagemeter.collector.spool_write_errors": "failed spool writes",
    "usagemeter.collector.spool_records_damaged": "acknowledged spool records lost to damage",
    "usagemeter.collector.state_files_quarantined": "damaged spool state files moved aside",
}

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


# Collectors store their own telemetry every few seconds; one silent for an hour is gone, not down.
_COLLECTORS_SQL = f"""
SELECT ResourceAttributes['service.instance.id'] AS instance, max(TimeUnix), argMax(Value, TimeUnix)
FROM {tables.METRICS_GAUGE}
WHERE ServiceName = {{service:String}} AND MetricName = {{metric:String}} AND TimeUnix >= {{since:DateTime('UTC')}}
GROUP BY instance ORDER BY instance
"""
_COLLECTOR_FAILURES_SQL = f"""
SELECT ResourceAttributes['service.instance.id'] AS instance, MetricName, sum(Value) AS grown
FROM {tables.METRICS_SUM}
WHERE ServiceName = {{service:String}} AND MetricName IN {{metrics:Array(String)}}
  AND TimeUnix >= {{since:DateTime('UTC')}}
GROUP BY instance, MetricName HAVING grown > 0
"""


@dataclass(frozen=True)
class CollectorReport:
    """A collector instance's latest self-report: when it was taken, the spool backlog then, and the spool
    failures it reported in the last hour (metric name → count)."""

    instance: str
    reported_at: datetime
    backlog_bytes: float
    failures: dict[str, float] = field(default_factory=dict)


def collector_reports(client: Client, now: datetime) -> list[CollectorReport]:
    """The latest backlog and the last hour's spool failures of every collector that reported in the last hour."""
    since = now.astimezone(UTC).replace(tzinfo=None) - timedelta(hours=1)
    parameters = {"service": COLLECTOR_SERVICE, "metric": SPOOL_BYTES_METRIC, "since": since}
    rows = client.query(_COLLECTORS_SQL, parameters=parameters).result_rows
    failures: dict[str, dict[str, float]] = {}
    failure_parameters = {"service": COLLECTOR_SERVICE, "metrics": list(SPOOL_FAILURE_METRICS), "since": since}
    for instance, metric, grown in client.query(_COLLECTOR_FAILURES_SQL, parameters=failure_parameters).result_rows:
        failures.setdefault(str(instance), {})[str(metric)] = float(grown)
    return [
        CollectorReport(
            str(instance), at if at.tzinfo else at.replace(tzinfo=UTC), float(backlog), failures.get(str(instance), {})
        )
        for instance, at, backlog in rows
    ]


@dataclass(frozen=True)
class HealthThresholds:
    """When ingest is stale, and when a collector is down (silent) or degraded (backlog)."""

    ingest_stale_after_seconds: float
    collector_stale_after_seconds: float
    collector_backlog_bytes: float


def newest_point(client: Client, now: datetime) -> datetime | None:
    """When the newest raw metric point or span stored in the last two days was taken; None when there is none."""
    since = now.astimezone(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    value = client.query(_NEWEST_SQL, parameters={"since": since}).result_rows[0][0]
    if value is None or value.timestamp() <= 0:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def health_details(
    newest: datetime | None,
    now: datetime,
    thresholds: HealthThresholds,
    workers: WorkersReport,
    collectors: list[CollectorReport],
) -> HealthDetails:
    """ClickHouse (which answered), ingest freshness, each collector's backlog and each worker instance."""
    age = None if newest is None else max((now - newest).total_seconds(), 0.0)
    services = [
        ServiceHealth(name="clickhouse", status="healthy", detail="answers queries"),
        _ingest(age, thresholds.ingest_stale_after_seconds),
    ]
    services += [_collector(report, now, thresholds) for report in collectors]
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


def _collector(report: CollectorReport, now: datetime, thresholds: HealthThresholds) -> ServiceHealth:
    name = f"collector {report.instance}"
    age = max((now - report.reported_at).total_seconds(), 0.0)
    backlog = f"spool backlog {report.backlog_bytes / 1_048_576:.1f} MiB"
    if age > thresholds.collector_stale_after_seconds:
        return ServiceHealth(name=name, status="down", detail=f"last report {age:.0f} s ago; {backlog}")
    if report.backlog_bytes > thresholds.collector_backlog_bytes:
        limit = thresholds.collector_backlog_bytes / 1_048_576
        return ServiceHealth(name=name, status="degraded", detail=f"{backlog} (degraded above {limit:g} MiB)")
    if report.failures:
        failures = ", ".join(
            f"{report.failures[metric]:.0f} {what}"
            for metric, what in SPOOL_FAILURE_METRICS.items()
            if metric in report.failures
        )
        return ServiceHealth(name=name, status="degraded", detail=f"{backlog}; in the last hour: {failures}")
    return ServiceHealth(name=name, status="healthy", detail=backlog)


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
