"""Worker heartbeats, queue depths, finished jobs and job durations, for the Workers dashboard.

Points are one minute apart, 30 s off the minute so none sits on the edge of the API's
15-minute window. Each worker is built to land in one status by one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tests.grafana.rows import HistogramPoint, MetricPoint, ns
from usagemeter_clickhouse import tables

SYSTEM = "arq"
DURATION_METRIC = "worker.job.duration"
POINTS = 90
#: Seconds before now of each point, newest first.
AGES = tuple(30 + 60 * k for k in range(POINTS))
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Per point: 18 jobs in (1, 2.5] s and 2 in (5, 10] s, summing to 52 s.
BUCKETS = tuple(18 if i == 8 else 2 if i == 10 else 0 for i in range(len(BOUNDS) + 1))
DURATION_SUM = 52.0
AVERAGE_DURATION = DURATION_SUM / 20
#: 95 % of 20 is 19: one of the two jobs in (5, 10], halfway in by linear interpolation.
P95_DURATION = 7.5


@dataclass(frozen=True)
class Worker:
    worker_id: str
    queue: str
    service: str
    job: str
    #: The newest heartbeat value is at least this many seconds before now (a stalled worker still reports).
    stalled_for: int = 0
    #: The worker stopped reporting anything this many seconds ago.
    gone_for: int = 0
    #: Point indexes (0 = newest) that finish one failed job; the others finish three completed jobs.
    failures: frozenset[int] = frozenset({40})


WORKERS = (
    Worker("emails-1", "emails", "mail-worker", "send_email", gone_for=600, failures=frozenset({20, 50})),
    Worker("emails-2", "emails", "mail-worker", "send_email", failures=frozenset(range(8)) | {60}),
    Worker("exports-1", "exports", "report-worker", "export_csv"),
    Worker("reports-1", "reports", "report-worker", "build_report", failures=frozenset({0, 5, 10, 45})),
    Worker("reports-2", "reports", "report-worker", "build_report", stalled_for=215),
)
#: The status each worker must get, and the rule that gives it.
EXPECTED_STATUS = {
    "emails-1": "down",  # last heartbeat 10 minutes ago
    "emails-2": "degraded",  # 8 failed of 29 jobs in the window (28 %)
    "exports-1": "degraded",  # its queue grew by 150 jobs in the window
    "reports-1": "healthy",  # 3 failed of 39 jobs in the window (8 %)
    "reports-2": "degraded",  # last heartbeat 3.5 minutes ago
}
SERVICES = ("mail-worker", "report-worker")


def queue_depth(queue: str, age: int) -> float:
    """Jobs waiting in ``queue`` ``age`` seconds before now."""
    if queue == "exports":
        return float(max(0, round(160 * (1 - age / 900))))
    if queue == "emails":
        return float(5 + round(45 * age / (60 * POINTS)))
    return float(10 + round(20 * (1 - age / (60 * POINTS))))


def _ages(worker: Worker) -> list[tuple[int, int]]:
    return [(k, age) for k, age in enumerate(AGES) if age >= worker.gone_for]


def heartbeats(worker: Worker, now: datetime) -> list[MetricPoint]:
    attributes = _queue_attributes(worker) | {tables.WORKER_ATTRIBUTE: worker.worker_id}
    latest = int(now.timestamp()) - worker.stalled_for
    return [
        MetricPoint(
            worker.service,
            tables.WORKER_HEARTBEAT_METRIC,
            attributes,
            ns(now - timedelta(seconds=age)),
            float(min(int(now.timestamp()) - age - 5, latest)),
        )
        for _, age in _ages(worker)
    ]


def jobs(worker: Worker, now: datetime) -> list[MetricPoint]:
    points = []
    for k, age in _ages(worker):
        status, amount = ("failed", 1.0) if k in worker.failures else ("completed", 3.0)
        attributes = _job_attributes(worker) | {tables.JOB_STATUS_ATTRIBUTE: status}
        points.append(
            MetricPoint(worker.service, tables.WORKER_JOBS_METRIC, attributes, ns(now - timedelta(seconds=age)), amount)
        )
    return points


def durations(worker: Worker, now: datetime) -> list[HistogramPoint]:
    attributes = _job_attributes(worker) | {tables.JOB_STATUS_ATTRIBUTE: "completed"}
    return [
        HistogramPoint(
            worker.service, DURATION_METRIC, attributes, ns(now - timedelta(seconds=age)), BUCKETS, BOUNDS, DURATION_SUM
        )
        for _, age in _ages(worker)
    ]


def depths(now: datetime) -> list[MetricPoint]:
    """Each queue's depth, reported by the service of its workers."""
    services = {w.queue: w for w in WORKERS}
    return [
        MetricPoint(
            worker.service,
            tables.WORKER_QUEUE_DEPTH_METRIC,
            _queue_attributes(worker),
            ns(now - timedelta(seconds=age)),
            queue_depth(queue, age),
        )
        for queue, worker in sorted(services.items())
        for age in AGES
    ]


def _queue_attributes(worker: Worker) -> dict[str, str]:
    return {tables.QUEUE_ATTRIBUTE: worker.queue, tables.MESSAGING_SYSTEM_ATTRIBUTE: SYSTEM}


def _job_attributes(worker: Worker) -> dict[str, str]:
    return {tables.WORKER_ATTRIBUTE: worker.worker_id, tables.QUEUE_ATTRIBUTE: worker.queue, "job.name": worker.job}
