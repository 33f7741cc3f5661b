"""Worker and queue status from the telemetry contract's worker metrics.

A worker instance is one (``worker.id``, queue) pair reporting ``worker.heartbeat``.
It is down when its last heartbeat is older than ``down_after_seconds``, degraded
when older than ``degraded_after_seconds``, when its failed share of the jobs it
finished in the window exceeds ``failure_ratio``, or when its queue grew by more
than ``queue_growth`` jobs over the window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.usage.queries import as_number
from usagemeter_api.schemas.operations import QueueStatus, Status, WorkersReport, WorkerStatus, WorkerThresholds
from usagemeter_clickhouse import Client, tables

__all__ = ["worker_report"]

#: Workers whose last heartbeat is older than this are no longer listed.
_FORGET_AFTER = timedelta(days=1)
_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "down": 2}
_WORKER = f"Attributes['{tables.WORKER_ATTRIBUTE}']"
_QUEUE = f"Attributes['{tables.QUEUE_ATTRIBUTE}']"
_SYSTEM = f"Attributes['{tables.MESSAGING_SYSTEM_ATTRIBUTE}']"
_RANGE = "TimeUnix >= {since:DateTime('UTC')} AND TimeUnix < {until:DateTime('UTC')}"

_HEARTBEATS_SQL = f"""
SELECT {_WORKER} AS worker, {_QUEUE} AS queue, any({_SYSTEM}), any(ServiceName), max(Value)
FROM {tables.METRICS_GAUGE}
WHERE MetricName = '{tables.WORKER_HEARTBEAT_METRIC}' AND {_RANGE}
GROUP BY worker, queue ORDER BY queue, worker
"""
_JOBS_SQL = f"""
SELECT {_WORKER} AS worker, {_QUEUE} AS queue, Attributes['{tables.JOB_STATUS_ATTRIBUTE}'] AS outcome, sum(Value)
FROM {tables.METRICS_SUM}
WHERE MetricName = '{tables.WORKER_JOBS_METRIC}' AND {_RANGE}
GROUP BY worker, queue, outcome
"""
_DEPTH_SQL = f"""
SELECT {_QUEUE} AS queue, any({_SYSTEM}), argMax(Value, TimeUnix), argMin(Value, TimeUnix)
FROM {tables.METRICS_GAUGE}
WHERE MetricName = '{tables.WORKER_QUEUE_DEPTH_METRIC}' AND {_RANGE}
GROUP BY queue ORDER BY queue
"""


@dataclass(frozen=True)
class _Jobs:
    completed: float = 0.0
    failed: float = 0.0

    @property
    def finished(self) -> float:
        return self.completed + self.failed

    def failure_rate(self) -> float | None:
        return round(self.failed / self.finished, 4) if self.finished else None

    def per_minute(self, window_seconds: int) -> float:
        return round(self.finished * 60 / window_seconds, 2)


def worker_report(client: Client, now: datetime, thresholds: WorkerThresholds) -> WorkersReport:
    """Every worker and queue seen in the last day, judged by ``thresholds`` at ``now``."""
    window_start = now - timedelta(seconds=thresholds.window_seconds)
    jobs = _jobs(client, window_start, now)
    depths = _depths(client, window_start, now)
    workers = [
        _worker_status(row, now, thresholds, jobs.get((row[0], row[1]), _Jobs()), depths.get(row[1]))
        for row in _query(client, _HEARTBEATS_SQL, now - _FORGET_AFTER, now)
    ]
    queues = _queue_statuses(workers, depths, jobs, thresholds)
    everything = [item.status for item in workers] + [item.status for item in queues]
    return WorkersReport(
        status=max(everything, key=_RANK.__getitem__, default="healthy"),
        generated_at=now,
        thresholds=thresholds,
        workers=workers,
        queues=queues,
    )


def _query(client: Client, sql: str, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    # The placeholders are DateTime('UTC'), which hold whole seconds.
    parameters = {
        "since": naive_utc(since).replace(microsecond=0),
        "until": naive_utc(until + timedelta(seconds=1)).replace(microsecond=0),
    }
    return [tuple(row) for row in client.query(sql, parameters=parameters).result_rows]


def _jobs(client: Client, since: datetime, until: datetime) -> dict[tuple[str, str], _Jobs]:
    counts: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for worker, queue, outcome, total in _query(client, _JOBS_SQL, since, until):
        counts[(str(worker), str(queue))][str(outcome)] = float(total)
    return {key: _Jobs(found.get("completed", 0.0), found.get("failed", 0.0)) for key, found in counts.items()}


def _depths(client: Client, since: datetime, until: datetime) -> dict[str, tuple[str, float, float]]:
    rows = _query(client, _DEPTH_SQL, since, until)
    return {str(queue): (str(system), float(last), float(first)) for queue, system, last, first in rows}


def _worker_status(
    row: tuple[Any, ...],
    now: datetime,
    thresholds: WorkerThresholds,
    jobs: _Jobs,
    depth: tuple[str, float, float] | None,
) -> WorkerStatus:
    worker, queue, system, service, beat = row
    last_heartbeat = datetime.fromtimestamp(float(beat), UTC)
    age = max((now - last_heartbeat).total_seconds(), 0.0)
    status: Status = "healthy"
    reasons = []
    if age > thresholds.down_after_seconds:
        status, reasons = "down", [f"no heartbeat for {age:.0f} s (down after {thresholds.down_after_seconds:g} s)"]
    elif age > thresholds.degraded_after_seconds:
        status = "degraded"
        reasons.append(f"heartbeat {age:.0f} s old (degraded after {thresholds.degraded_after_seconds:g} s)")
    rate = jobs.failure_rate()
    if status != "down" and rate is not None and rate > thresholds.failure_ratio:
        status = "degraded"
        reasons.append(f"{rate:.0%} of jobs failed (threshold {thresholds.failure_ratio:.0%})")
    if status != "down" and depth is not None and depth[1] - depth[2] > thresholds.queue_growth:
        status = "degraded"
        reasons.append(f"queue grew by {depth[1] - depth[2]:g} jobs (threshold {thresholds.queue_growth})")
    return WorkerStatus(
        worker_id=str(worker),
        queue=str(queue),
        messaging_system=str(system),
        service_name=str(service),
        status=status,
        reasons=reasons,
        last_heartbeat=last_heartbeat,
        heartbeat_age_seconds=round(age, 3),
        jobs_completed=as_number(jobs.completed),
        jobs_failed=as_number(jobs.failed),
        failure_rate=rate,
        throughput_per_minute=jobs.per_minute(thresholds.window_seconds),
    )


def _queue_statuses(
    workers: list[WorkerStatus],
    depths: dict[str, tuple[str, float, float]],
    jobs: dict[tuple[str, str], _Jobs],
    thresholds: WorkerThresholds,
) -> list[QueueStatus]:
    names = sorted({item.queue for item in workers} | set(depths))
    return [_queue_status(name, workers, depths.get(name), jobs, thresholds) for name in names]


def _queue_status(
    name: str,
    workers: list[WorkerStatus],
    depth: tuple[str, float, float] | None,
    jobs: dict[tuple[str, str], _Jobs],
    thresholds: WorkerThresholds,
) -> QueueStatus:
    serving = [item for item in workers if item.queue == name]
    live = [item for item in serving if item.status != "down"]
    total = _Jobs(
        sum(found.completed for (_, queue), found in jobs.items() if queue == name),
        sum(found.failed for (_, queue), found in jobs.items() if queue == name),
    )
    status: Status = "healthy"
    reasons = []
    if not live:
        status, reasons = "down", ["no live worker serves the queue"]
    growth = None if depth is None else depth[1] - depth[2]
    if status != "down" and growth is not None and growth > thresholds.queue_growth:
        status = "degraded"
        reasons.append(f"grew by {growth:g} jobs in the window (threshold {thresholds.queue_growth})")
    if status != "down" and (rate := total.failure_rate()) is not None and rate > thresholds.failure_ratio:
        status = "degraded"
        reasons.append(f"{rate:.0%} of jobs failed (threshold {thresholds.failure_ratio:.0%})")
    return QueueStatus(
        queue=name,
        messaging_system=depth[0] if depth else (serving[0].messaging_system if serving else ""),
        status=status,
        reasons=reasons,
        depth=None if depth is None else as_number(depth[1]),
        depth_change=None if growth is None else as_number(growth),
        workers_live=len(live),
        throughput_per_minute=total.per_minute(thresholds.window_seconds),
        failure_rate=total.failure_rate(),
    )
