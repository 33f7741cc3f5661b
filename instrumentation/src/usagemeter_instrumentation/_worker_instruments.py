"""The ``worker.*`` instruments of a pipeline, and the live workers whose gauges they observe."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.util.types import AttributeValue

from usagemeter_instrumentation._names import (
    JOB_NAME,
    JOB_STATUS,
    QUEUE_NAME,
    WORKER_HEARTBEAT_METRIC,
    WORKER_ID,
    WORKER_JOB_DURATION_METRIC,
    WORKER_JOBS_METRIC,
    WORKER_QUEUE_DEPTH_METRIC,
)
from usagemeter_instrumentation._once import OnceLogger
from usagemeter_instrumentation._quantity import Amount
from usagemeter_instrumentation._tally import Attributes, Tally, flush_into

_once = OnceLogger(logging.getLogger("usagemeter_instrumentation"))
# Job run times from milliseconds to an hour.
DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
JOB_KEY_NAMES = (WORKER_ID, QUEUE_NAME, JOB_NAME, JOB_STATUS)


class LiveWorker:
    """What a running worker reports at each collection (implemented by ``WorkerTelemetry``)."""

    def heartbeat_observation(self) -> tuple[int, Attributes] | None:
        """Unix seconds of the last heartbeat and its attributes, or ``None`` before the first."""
        raise NotImplementedError

    def queue_depth_observation(self) -> tuple[int, Attributes] | None:
        """Jobs waiting in the worker's queue and the queue's attributes, or ``None`` when unknown."""
        raise NotImplementedError


class LiveWorkers:
    """The workers of this process that are running; pipelines observe their gauges at each collection."""

    def __init__(self) -> None:
        self._workers: set[LiveWorker] = set()
        self._lock = threading.Lock()

    def add(self, worker: LiveWorker) -> None:
        with self._lock:
            self._workers.add(worker)

    def discard(self, worker: LiveWorker) -> None:
        with self._lock:
            self._workers.discard(worker)

    def snapshot(self) -> list[LiveWorker]:
        with self._lock:
            return list(self._workers)


live_workers = LiveWorkers()


@dataclass
class WorkerInstruments:
    """Job counts are tallied like feature usage, so a failed export keeps them; durations go to a histogram."""

    jobs: Tally
    job_duration: Histogram

    def pending(self) -> Amount:
        return self.jobs.pending()


def register_worker_instruments(meter: Meter, jobs: Tally) -> tuple[WorkerInstruments, Callable[[int], None]]:
    """Create the ``worker.*`` instruments over the ``jobs`` tally (keyed by :data:`JOB_KEY_NAMES`).

    Returns them and the hand-over of tallied jobs to the counter, to run at each collection.
    """
    counter: Counter = meter.create_counter(WORKER_JOBS_METRIC, unit="{job}", description="Jobs finished by a worker")
    duration = meter.create_histogram(
        WORKER_JOB_DURATION_METRIC,
        unit="s",
        description="Run time of a job",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS_SECONDS,
    )
    meter.create_observable_gauge(
        WORKER_HEARTBEAT_METRIC, callbacks=[_heartbeats], unit="s", description="Unix time of a worker's last heartbeat"
    )
    meter.create_observable_gauge(
        WORKER_QUEUE_DEPTH_METRIC, callbacks=[_queue_depths], unit="{job}", description="Jobs waiting in a queue"
    )

    def hand_over(limit: int) -> None:
        flush_into(jobs, counter.add, limit)

    return WorkerInstruments(jobs, duration), hand_over


def _heartbeats(options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(value, attributes) for value, attributes in _observe(lambda worker: worker.heartbeat_observation())
    ]


def _queue_depths(options: CallbackOptions) -> Iterable[Observation]:
    # Several workers may serve one queue; the queue is one series.
    by_queue: dict[tuple[tuple[str, AttributeValue], ...], Observation] = {}
    for value, attributes in _observe(lambda worker: worker.queue_depth_observation()):
        by_queue[tuple(sorted(attributes.items()))] = Observation(value, attributes)
    return list(by_queue.values())


def _observe(read: Callable[[LiveWorker], tuple[int, Attributes] | None]) -> list[tuple[int, Attributes]]:
    observed = []
    for worker in live_workers.snapshot():
        try:
            found = read(worker)
        except Exception:  # one worker's failing depth source must not hide the others
            _once.warning("worker-observation", "usagemeter could not observe a worker", exc_info=True)
            continue
        if found is not None:
            observed.append(found)
    return observed
