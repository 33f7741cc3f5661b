"""The demo's business side: sign-ups and upgrades, and a "reports" queue served by a background worker.

Everything is drawn from its own seeded generator, so the chat traffic stays as it was and a run
can be replayed exactly.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import usagemeter_instrumentation as instrumentation
from usagemeter_instrumentation import JOB_COMPLETED, JOB_FAILED, WorkerTelemetry

REPORTS_QUEUE = "reports"
REPORTS_WORKER_ID = "demo-reports-worker"
REPORT_JOBS: tuple[str, ...] = ("build_usage_report", "send_weekly_digest")
SIGNUP = "signup"
UPGRADE = "upgrade"

SIGNUP_PROBABILITY = 0.02
UPGRADE_PROBABILITY = 0.005
JOB_PROBABILITY = 0.15
#: A clear minority of report jobs fail, well under the API's 20 % "degraded" threshold, so the
#: demo's worker reads healthy; ``USAGEMETER_DEMO_JOB_FAILURE_RATE`` raises it to show the degraded state.
DEFAULT_JOB_FAILURE_RATE = 0.03
JOB_SECONDS = (0.001, 0.02)

_logger = logging.getLogger("usagemeter.demo")


@dataclass(frozen=True)
class Conversion:
    """A conversion the host reports: a sign-up of a new user or an upgrade of a known one."""

    name: str
    user_id: str


@dataclass(frozen=True)
class ReportJob:
    """A job for the reports worker; whether it fails is decided when it is enqueued, for replays."""

    name: str
    user_id: str
    seconds: float
    fails: bool


@dataclass
class BusinessEvents:
    """What one chat message causes besides feature uses."""

    conversions: list[Conversion]
    jobs: list[ReportJob]


class BusinessTraffic:
    """A reproducible stream of conversions and report jobs, one draw per chat message."""

    def __init__(self, user_ids: list[str], seed: int, job_failure_rate: float = DEFAULT_JOB_FAILURE_RATE) -> None:
        if not 0 <= job_failure_rate <= 1:
            raise ValueError(f"the job failure rate must be between 0 and 1, got {job_failure_rate}")
        self._users = user_ids
        self._job_failure_rate = job_failure_rate
        self._random = random.Random(seed ^ 0x5EED)
        self._signups = 0

    def next_events(self) -> BusinessEvents:
        """The conversions and jobs accompanying the next chat message."""
        draw = self._random
        events = BusinessEvents([], [])
        if draw.random() < SIGNUP_PROBABILITY:
            self._signups += 1
            events.conversions.append(Conversion(SIGNUP, f"new-user-{self._signups}"))
        if draw.random() < UPGRADE_PROBABILITY:
            events.conversions.append(Conversion(UPGRADE, draw.choice(self._users)))
        if draw.random() < JOB_PROBABILITY:
            job = ReportJob(
                draw.choice(REPORT_JOBS),
                draw.choice(self._users),
                draw.uniform(*JOB_SECONDS),
                draw.random() < self._job_failure_rate,
            )
            events.jobs.append(job)
        return events


class ReportFailed(RuntimeError):
    """A report job that failed, as some do in the demo."""


class ReportsQueueUnavailable(RuntimeError):
    """The reports queue cannot be served: its Redis cannot be reached."""


class ReportsService(Protocol):
    """Where the host hands its report jobs: started before the chat, stopped (queue drained) after it."""

    finished: Counter[tuple[str, str]]

    def start(self) -> None: ...

    def submit(self, job: ReportJob) -> None: ...

    def stop(self) -> None: ...


class ReportsWorker:
    """A worker thread serving an in-process "reports" queue, reporting through :class:`WorkerTelemetry`."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[ReportJob] = queue.Queue()
        self.finished: Counter[tuple[str, str]] = Counter()
        self.telemetry = WorkerTelemetry(REPORTS_QUEUE, worker_id=REPORTS_WORKER_ID, queue_depth=self.jobs.qsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-reports-worker", daemon=True)

    def start(self) -> None:
        self.telemetry.start()
        self._thread.start()

    def submit(self, job: ReportJob) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        """Finish the queued jobs, then stop."""
        self._stop.set()
        self._thread.join()
        self.telemetry.stop()

    def _serve(self) -> None:
        while not (self._stop.is_set() and self.jobs.empty()):
            try:
                job = self.jobs.get(timeout=0.05)
            except queue.Empty:
                continue
            self._run(job)

    def _run(self, job: ReportJob) -> None:
        try:
            with self.telemetry.job(job.name):
                self._stop.wait(job.seconds)
                if job.fails:
                    raise ReportFailed(f"{job.name} for {job.user_id} found no data")
        except ReportFailed as error:
            _logger.debug("demo report job failed: %s", error)
            self.finished[(job.name, JOB_FAILED)] += 1
        else:
            self.finished[(job.name, JOB_COMPLETED)] += 1


def report_conversions(conversions: list[Conversion], totals: Counter[str]) -> None:
    """Send the conversions through the instrumentation and add them to ``totals``."""
    for conversion in conversions:
        instrumentation.track_conversion(conversion.name, conversion.user_id)
        totals[conversion.name] += 1
