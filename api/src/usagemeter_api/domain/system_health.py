"""System health (ClickHouse, ingest freshness, workers) and conversion totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.collector_probes import CollectorProbe
from usagemeter_api.domain.usage.queries import as_number
from usagemeter_api.schemas.operations import (
    Conversions,
    ConversionTotals,
    HealthDetails,
    ServiceHealth,
    Status,
    WorkersReport,
)
from usagemeter_clickhouse import Client, tables

__all__ = ["CollectorReport", "FailingInserts", "collector_reports", "conversions", "health_details", "newest_point"]

_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "down": 2}

COLLECTOR_SERVICE = "usagemeter-collector"
SPOOL_BYTES_METRIC = "usagemeter.collector.spool_bytes"
OLDEST_UNSENT_METRIC = "usagemeter.collector.oldest_unsent_age"
#: Stored by a collector's writer directly, past its stuck spool, while its inserts fail (value: oldest unsent age).
INSERT_FAILING_METRIC = "usagemeter.collector.insert_failing"
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
# A collector's instance id is kept in its spool directory, so a restarted collector reports as the same instance.
_COLLECTORS_SQL = f"""
SELECT ResourceAttributes['service.instance.id'] AS instance,
    maxIf(TimeUnix, MetricName = {{spool:String}}),
    argMaxIf(Value, TimeUnix, MetricName = {{spool:String}}),
    argMaxIf(Value, TimeUnix, MetricName = {{unsent:String}}),
    maxIf(TimeUnix, MetricName = {{failing:String}}),
    argMaxIf(Attributes['error'], TimeUnix, MetricName = {{failing:String}}),
    argMaxIf(Value, TimeUnix, MetricName = {{failing:String}})
FROM {tables.METRICS_GAUGE}
WHERE ServiceName = {{service:String}} AND MetricName IN ({{spool:String}}, {{unsent:String}}, {{failing:String}})
  AND TimeUnix >= {{since:DateTime('UTC')}}
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
class FailingInserts:
    """A collector's inserts fail: the error, and the age of its oldest unsent data at ``seen_at``."""

    error: str
    oldest_unsent_seconds: float
    seen_at: datetime


@dataclass(frozen=True)
class CollectorReport:
    """A collector instance's latest self-report: when it was taken (None: never, only failing inserts were
    seen), the spool backlog and oldest unsent data then, the spool failures it reported in the last hour
    (metric name → count), and its failing inserts when they were seen after that report."""

    instance: str
    reported_at: datetime | None
    backlog_bytes: float
    failures: dict[str, float] = field(default_factory=dict)
    oldest_unsent_seconds: float = 0.0
    failing: FailingInserts | None = None


def collector_reports(client: Client, now: datetime) -> list[CollectorReport]:
    """The latest backlog and the last hour's spool failures of every collector that reported in the last hour."""
    since = naive_utc(now) - timedelta(hours=1)
    parameters = {
        "service": COLLECTOR_SERVICE,
        "spool": SPOOL_BYTES_METRIC,
        "unsent": OLDEST_UNSENT_METRIC,
        "failing": INSERT_FAILING_METRIC,
        "since": since,
    }
    rows = client.query(_COLLECTORS_SQL, parameters=parameters).result_rows
    failures: dict[str, dict[str, float]] = {}
    failure_parameters = {"service": COLLECTOR_SERVICE, "metrics": list(SPOOL_FAILURE_METRICS), "since": since}
    for instance, metric, grown in client.query(_COLLECTOR_FAILURES_SQL, parameters=failure_parameters).result_rows:
        failures.setdefault(str(instance), {})[str(metric)] = float(grown)
    return [_collector_report(row, failures.get(str(row[0]), {})) for row in rows]


def _collector_report(row: Sequence[Any], failures: dict[str, float]) -> CollectorReport:
    instance, reported, backlog, unsent, failing_at, error, failing_unsent = row
    reported_at, seen_at = _utc_or_none(reported), _utc_or_none(failing_at)
    # Failing inserts count until a self-report newer than them arrives: that one was inserted.
    current = seen_at is not None and (reported_at is None or seen_at > reported_at)
    failing = FailingInserts(str(error), float(failing_unsent), seen_at) if current and seen_at else None
    return CollectorReport(str(instance), reported_at, float(backlog), failures, float(unsent), failing)


def _utc_or_none(moment: datetime) -> datetime | None:
    # maxIf over no row gives the epoch.
    if moment.timestamp() <= 0:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HealthThresholds:
    """When ingest is stale, and when a collector is down (silent) or degraded (backlog, old unsent data)."""

    ingest_stale_after_seconds: float
    collector_stale_after_seconds: float
    collector_backlog_bytes: float
    collector_unsent_after_seconds: float = 120.0
    #: OTLP/HTTP base URLs of collectors whose GET /health is asked.
    collector_urls: tuple[str, ...] = ()
    #: Sent on those health checks so that collectors add their error texts to the reason codes.
    collector_token: SecretStr | None = None


def newest_point(client: Client, now: datetime) -> datetime | None:
    """When the newest raw metric point or span stored in the last two days was taken; None when there is none."""
    since = naive_utc(now).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
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
    probes: Sequence[CollectorProbe] = (),
) -> HealthDetails:
    """ClickHouse (which answered), ingest freshness, each collector (its delivery and backlog, from its reports
    and, for the collectors in ``probes``, its own health check) and each worker instance."""
    age = None if newest is None else max((now - newest).total_seconds(), 0.0)
    services = [
        ServiceHealth(name="clickhouse", status="healthy", detail="answers queries"),
        _ingest(age, thresholds.ingest_stale_after_seconds),
    ]
    services += _collectors(collectors, probes, now, thresholds)
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


def _collectors(
    reports: list[CollectorReport], probes: Sequence[CollectorProbe], now: datetime, thresholds: HealthThresholds
) -> list[ServiceHealth]:
    """One entry per collector instance seen in ClickHouse or known from its health check (answered now, or at
    a URL that answered before), and one per URL that never named an instance."""
    # An instance answering (at any URL) wins over the same instance remembered at a URL now silent.
    named = {probe.instance: probe for probe in probes if probe.instance is not None and probe.unreachable is not None}
    named |= {probe.instance: probe for probe in probes if probe.instance is not None and probe.unreachable is None}
    known = {report.instance for report in reports}
    reports = reports + [CollectorReport(name, None, 0.0) for name in named if name not in known]
    services = [_collector(report, named.get(report.instance), now, thresholds) for report in reports]
    for probe in probes:
        if probe.instance is not None:
            continue
        if probe.unreachable is not None:
            detail = f"health check unanswered: {probe.unreachable}"
            services.append(ServiceHealth(name=f"collector at {probe.url}", status="down", detail=detail))
        else:  # its self-telemetry is switched off: it has no instance id to report
            services.append(_collector(CollectorReport(f"at {probe.url}", None, 0.0), probe, now, thresholds))
    return services


def _collector(
    report: CollectorReport, probe: CollectorProbe | None, now: datetime, thresholds: HealthThresholds
) -> ServiceHealth:
    findings = _delivery(report, probe, now, thresholds) + _spool(report, thresholds)
    status: Status = max((status for status, _ in findings), key=_RANK.__getitem__, default="healthy")
    return ServiceHealth(
        name=f"collector {report.instance}", status=status, detail="; ".join(text for _, text in findings)
    )


def _delivery(
    report: CollectorReport, probe: CollectorProbe | None, now: datetime, thresholds: HealthThresholds
) -> list[tuple[Status, str]]:
    """Whether what the collector accepts reaches ClickHouse: failing inserts, silence, old unsent data."""
    answered = probe if probe is not None and probe.unreachable is None else None
    findings = _unsent(report, answered, now, thresholds)
    if probe is not None and probe.unreachable is not None:
        findings.append(("down", f"health check unanswered: {probe.unreachable}"))
    if answered is not None and not answered.spool_writable:
        findings.append(("down", "spool cannot write: exports are refused"))
    if report.reported_at is not None:
        age = max((now - report.reported_at).total_seconds(), 0.0)
        if age > thresholds.collector_stale_after_seconds:
            findings.append(("down", f"last report {age:.0f} s ago"))
    elif probe is None:  # known from failing-insert rows only
        findings.append(("down", "no self-report stored in the last hour"))
    return findings


def _unsent(
    report: CollectorReport, answered: CollectorProbe | None, now: datetime, thresholds: HealthThresholds
) -> list[tuple[Status, str]]:
    """Failing inserts or old unsent data, from the collector's answer now, else from what it stored."""
    error, unsent = None, report.oldest_unsent_seconds
    if report.failing is not None:
        error = report.failing.error
        unsent = report.failing.oldest_unsent_seconds + max((now - report.failing.seen_at).total_seconds(), 0.0)
    if answered is not None:  # what the collector answers now supersedes what it stored before
        error, unsent = answered.insert_error, answered.oldest_unsent_seconds
    if error is not None:
        return [("down", f"inserts failing: {error}; oldest unsent data {unsent:.0f} s old")]
    if unsent > thresholds.collector_unsent_after_seconds:
        limit = thresholds.collector_unsent_after_seconds
        return [("degraded", f"oldest unsent data {unsent:.0f} s old (degraded above {limit:g} s)")]
    return []


def _spool(report: CollectorReport, thresholds: HealthThresholds) -> list[tuple[Status, str]]:
    """The spool backlog at the last report and the spool failures of the last hour."""
    backlog = f"spool backlog {report.backlog_bytes / 1_048_576:.1f} MiB"
    findings: list[tuple[Status, str]] = [("healthy", backlog)]
    if report.backlog_bytes > thresholds.collector_backlog_bytes:
        limit = thresholds.collector_backlog_bytes / 1_048_576
        findings = [("degraded", f"{backlog} (degraded above {limit:g} MiB)")]
    if report.failures:
        failures = ", ".join(
            f"{report.failures[metric]:.0f} {what}"
            for metric, what in SPOOL_FAILURE_METRICS.items()
            if metric in report.failures
        )
        findings.append(("degraded", f"in the last hour: {failures}"))
    return findings


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
