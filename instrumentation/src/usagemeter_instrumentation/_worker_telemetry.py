"""Telemetry of a background worker: heartbeats, queue depth, and the jobs it finishes."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from usagemeter_instrumentation import _api
from usagemeter_instrumentation._names import (
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_NAME,
    JOB_STATUS,
    MESSAGING_SYSTEM,
    QUEUE_NAME,
    WORKER_ID,
)
from usagemeter_instrumentation._once import OnceLogger
from usagemeter_instrumentation._tally import Attributes
from usagemeter_instrumentation._worker_instruments import LiveWorker, live_workers

JOB_STATUSES = (JOB_COMPLETED, JOB_FAILED)
QueueDepth = Callable[[], "int | None"]

_once = OnceLogger(logging.getLogger("usagemeter_instrumentation"))


def default_worker_id() -> str:
    """``host:pid``: unique among the workers of one deployment at a time."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerTelemetry(LiveWorker):
    """The ``worker.*`` metrics of one worker serving ``queue``, sent through the configured pipeline.

    Between :meth:`start` and :meth:`stop` (or inside ``with telemetry:``) the worker reports
    ``worker.heartbeat`` at every collection (with ``auto_heartbeat=False`` only the time of the
    last :meth:`heartbeat` call, so a stuck loop shows as a stale heartbeat) and
    ``worker.queue.depth`` from ``queue_depth()`` or the last :meth:`set_queue_depth`. Finished
    jobs count in ``worker.jobs`` and ``worker.job.duration``. Nothing here raises into the worker.
    """

    def __init__(
        self,
        queue: str = "default",
        *,
        worker_id: str | None = None,
        system: str = "python",
        queue_depth: QueueDepth | None = None,
        auto_heartbeat: bool = True,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id or default_worker_id()
        self.system = system
        self.auto_heartbeat = auto_heartbeat
        self._queue_depth = queue_depth
        self._depth: int | None = None
        self._last_heartbeat: int | None = None
        self._lock = threading.Lock()
        self._worker_attributes: Attributes = {WORKER_ID: self.worker_id, QUEUE_NAME: queue, MESSAGING_SYSTEM: system}
        self._queue_attributes: Attributes = {QUEUE_NAME: queue, MESSAGING_SYSTEM: system}

    def start(self) -> WorkerTelemetry:
        """Report this worker as alive from now on (heartbeat included)."""
        self.heartbeat()
        live_workers.add(self)
        return self

    def stop(self) -> None:
        """Stop reporting this worker; its heartbeat then ages and the API marks it down."""
        live_workers.discard(self)

    def __enter__(self) -> WorkerTelemetry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def heartbeat(self) -> None:
        """Record that the worker is alive now."""
        with self._lock:
            self._last_heartbeat = int(time.time())

    def set_queue_depth(self, depth: int | None) -> None:
        """Record the jobs waiting in the queue (``None``: unknown, nothing is reported)."""
        with self._lock:
            self._depth = depth

    def job_finished(self, name: str, status: str, duration_seconds: float) -> None:
        """Count one finished job: ``status`` is ``"completed"`` or ``"failed"``."""
        pipeline = _api._pipeline
        if pipeline is None:
            _once.warning("not-configured", "usagemeter instrumentation is not configured; jobs are not recorded")
            return
        if status not in JOB_STATUSES or not name:
            _once.warning(f"job:{status}", "usagemeter ignored a job without name or with status %r", status)
            return
        try:
            attributes = {WORKER_ID: self.worker_id, QUEUE_NAME: self.queue, JOB_NAME: name, JOB_STATUS: status}
            pipeline.workers.jobs.add((self.worker_id, self.queue, name, status))
            pipeline.workers.job_duration.record(max(float(duration_seconds), 0.0), attributes)
        except Exception as error:  # telemetry must never fail the worker
            _once.warning(f"job-error:{type(error).__name__}", "usagemeter could not record a job", exc_info=True)

    @contextmanager
    def job(self, name: str) -> Iterator[None]:
        """Time the block as job ``name``: completed when it finishes, failed when it raises (re-raised)."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.job_finished(name, JOB_FAILED, time.perf_counter() - started)
            raise
        self.job_finished(name, JOB_COMPLETED, time.perf_counter() - started)

    def heartbeat_observation(self) -> tuple[int, Attributes] | None:
        """Called at each collection."""
        if self.auto_heartbeat:
            self.heartbeat()
        beat = self._last_heartbeat
        return None if beat is None else (beat, self._worker_attributes)

    def queue_depth_observation(self) -> tuple[int, Attributes] | None:
        """Called at each collection."""
        depth = self._queue_depth() if self._queue_depth is not None else self._depth
        return None if depth is None else (int(depth), self._queue_attributes)
