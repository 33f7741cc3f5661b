"""The "reports" jobs on a real arq worker over Redis, instrumented by usagemeter's arq adapter.

The chat loop is synchronous, so the arq pool and worker live on an event loop of their own in a
background thread; the host hands jobs over with :meth:`ArqReportsWorker.submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import Counter
from typing import Any

from arq import ArqRedis, Worker, create_pool
from arq.connections import RedisSettings
from arq.worker import Function, create_worker, func

from usagemeter.demo._operations import (
    REPORT_JOBS,
    REPORTS_QUEUE,
    REPORTS_WORKER_ID,
    ReportFailed,
    ReportJob,
    ReportsQueueUnavailable,
)
from usagemeter_instrumentation import JOB_COMPLETED, JOB_FAILED
from usagemeter_instrumentation.arq import instrument_worker_settings

# Long enough for the adapter to read each outcome, short enough not to pile up results in Redis.
KEEP_RESULT_SECONDS = 300
POLL_DELAY_SECONDS = 0.05
START_TIMEOUT_SECONDS = 30.0
DRAIN_TIMEOUT_SECONDS = 30.0

_logger = logging.getLogger("usagemeter.demo")
_OUTCOME = "usagemeter.demo.outcome"


def _report_function(name: str) -> Function:
    async def run_report(ctx: dict[Any, Any], user_id: str, seconds: float, fails: bool) -> str:
        ctx[_OUTCOME] = (name, JOB_FAILED)
        await asyncio.sleep(seconds)
        if fails:
            raise ReportFailed(f"{name} for {user_id} found no data")
        ctx[_OUTCOME] = (name, JOB_COMPLETED)
        return f"{name} for {user_id}"

    return func(run_report, name=name)


def reports_worker_settings(finished: Counter[tuple[str, str]], finished_changed: threading.Condition) -> type:
    """arq ``WorkerSettings`` of the reports worker, instrumented by usagemeter, counting outcomes in ``finished``."""

    async def count_outcome(ctx: dict[Any, Any]) -> None:
        # Runs after usagemeter's hook, so a counted job has already been reported.
        outcome = ctx.get(_OUTCOME)
        if outcome is not None:
            with finished_changed:
                finished[outcome] += 1
                finished_changed.notify_all()

    class WorkerSettings:
        functions = [_report_function(name) for name in REPORT_JOBS]
        queue_name = REPORTS_QUEUE
        keep_result = KEEP_RESULT_SECONDS
        poll_delay = POLL_DELAY_SECONDS
        after_job_end = count_outcome

    return instrument_worker_settings(WorkerSettings, worker_id=REPORTS_WORKER_ID)


def _redis_settings(redis_url: str) -> RedisSettings:
    try:
        return RedisSettings.from_dsn(redis_url)
    except (RuntimeError, ValueError) as error:
        scheme = redis_url.partition("://")[0] if "://" in redis_url else "none"
        raise ValueError(f"the Redis URL must look like redis://host:6379/0 (scheme {scheme!r}): {error}") from error


class ArqReportsWorker:
    """Enqueues report jobs with arq and serves them with an arq worker, both on one background event loop."""

    def __init__(self, redis_url: str) -> None:
        self.redis_settings = _redis_settings(redis_url)
        self.finished: Counter[tuple[str, str]] = Counter()
        self._finished_changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-arq-reports", daemon=True)
        self._enqueued: list[concurrent.futures.Future[Any]] = []
        self._pool: ArqRedis | None = None
        self._worker: Worker | None = None
        self._worker_run: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect to Redis and start the worker; raises :class:`ReportsQueueUnavailable` when it cannot."""
        self._thread.start()
        try:
            self._call(self._start(), START_TIMEOUT_SECONDS)
        except Exception as error:
            self._call(self._close(), START_TIMEOUT_SECONDS)
            self._stop_loop()
            target = f"{self.redis_settings.host}:{self.redis_settings.port}"
            raise ReportsQueueUnavailable(f"cannot run the reports worker on Redis at {target}: {error}") from error

    def submit(self, job: ReportJob) -> None:
        """Enqueue ``job`` on the reports queue without waiting for Redis."""
        assert self._pool is not None, "start() the reports worker first"
        pool = self._pool
        coroutine = pool.enqueue_job(job.name, job.user_id, job.seconds, job.fails)
        self._enqueued.append(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def stop(self) -> None:
        """Wait for the submitted jobs to finish (within a deadline), then stop the worker and close Redis."""
        expected = self._count_enqueued()
        if not self._wait_for_jobs(expected):
            _logger.warning("reports worker stopped with %d of %d jobs unfinished", expected - self.total(), expected)
        self._call(self._close(), DRAIN_TIMEOUT_SECONDS)
        self._stop_loop()

    def total(self) -> int:
        """Jobs finished so far, completed or failed."""
        with self._finished_changed:
            return sum(self.finished.values())

    async def _start(self) -> None:
        self._pool = await create_pool(self.redis_settings, default_queue_name=REPORTS_QUEUE)
        settings = reports_worker_settings(self.finished, self._finished_changed)
        self._worker = create_worker(settings, redis_settings=self.redis_settings, handle_signals=False)
        self._worker_run = asyncio.create_task(self._worker.async_run())

    async def _close(self) -> None:
        if self._worker is not None:
            await self._worker.close()  # cancels the worker's loop, then runs on_shutdown
        if self._worker_run is not None:
            await asyncio.gather(self._worker_run, return_exceptions=True)
        if self._pool is not None:
            await self._pool.aclose()

    def _count_enqueued(self) -> int:
        done, not_done = concurrent.futures.wait(self._enqueued, timeout=DRAIN_TIMEOUT_SECONDS)
        failed = [future.exception() for future in done if future.exception() is not None]
        if failed or not_done:
            _logger.warning("%d report jobs could not be enqueued: %s", len(failed) + len(not_done), failed[:1])
        return len(done) - len(failed)

    def _wait_for_jobs(self, expected: int) -> bool:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        with self._finished_changed:
            return self._finished_changed.wait_for(
                lambda: sum(self.finished.values()) >= expected, timeout=max(deadline - time.monotonic(), 0)
            )

    def _call(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
