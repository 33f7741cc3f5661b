"""Worker telemetry for arq workers. Requires the ``[arq]`` extra.

::

    from usagemeter_instrumentation.arq import instrument_worker_settings

    @instrument_worker_settings
    class WorkerSettings:
        functions = [build_report]
        on_startup = startup          # the host's hooks keep running, before or after usagemeter's

The worker then reports the contract's ``worker.*`` metrics through the configured pipeline
(call :func:`usagemeter_instrumentation.configure` in ``on_startup`` or at import): a heartbeat
per collection while it runs, the depth of its queue (``ZCARD`` of arq's queue key) and every
job that ran, by function name, as ``completed`` or ``failed`` with arq's own start and finish
times. Outcomes are read from the job results arq keeps, so ``keep_result`` must not be 0; a job
that arq will retry is counted once it finally completes or fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.constants import default_queue_name
from arq.jobs import Deserializer, Job

from usagemeter_instrumentation._names import JOB_COMPLETED, JOB_FAILED
from usagemeter_instrumentation._once import OnceLogger
from usagemeter_instrumentation._worker_telemetry import WorkerTelemetry

__all__ = ["ARQ_SYSTEM", "DEFAULT_DEPTH_INTERVAL_SECONDS", "instrument_worker_settings"]

ARQ_SYSTEM = "arq"
DEFAULT_DEPTH_INTERVAL_SECONDS = 1.0
Settings = TypeVar("Settings", bound="type | dict[str, Any]")
Hook = Callable[[dict[Any, Any]], Awaitable[Any]]

_logger = logging.getLogger("usagemeter_instrumentation")
_once = OnceLogger(_logger)
_TELEMETRY = "usagemeter.telemetry"
_DEPTH_TASK = "usagemeter.queue_depth"
_MARK = "_usagemeter_instrumented"


def instrument_worker_settings(
    settings: Settings,
    *,
    worker_id: str | None = None,
    depth_interval_seconds: float = DEFAULT_DEPTH_INTERVAL_SECONDS,
) -> Settings:
    """Add usagemeter's worker telemetry to arq ``WorkerSettings`` (a class, changed in place, or a dict, copied).

    Chains ``on_startup``, ``on_shutdown`` and ``after_job_end`` with any hooks already set: the host's
    start-up runs first, usagemeter's other hooks run first and never raise.
    The queue depth is read from Redis every ``depth_interval_seconds``. ``worker_id`` defaults to
    ``host:pid``. Instrumenting the same settings twice changes nothing.
    """
    if depth_interval_seconds <= 0:
        raise ValueError(f"depth_interval_seconds must be positive, got {depth_interval_seconds}")
    values: dict[str, Any] = dict(settings) if isinstance(settings, dict) else dict(vars(settings))
    if values.get(_MARK):
        return settings
    queue = values.get("queue_name") or default_queue_name
    deserializer: Deserializer | None = values.get("job_deserializer")
    if values.get("keep_result") == 0:
        _logger.warning("arq keeps no job results (keep_result=0); usagemeter cannot count this worker's jobs")

    async def start(ctx: dict[Any, Any]) -> None:
        telemetry = WorkerTelemetry(queue, worker_id=worker_id, system=ARQ_SYSTEM).start()
        ctx[_TELEMETRY] = telemetry
        ctx[_DEPTH_TASK] = asyncio.create_task(_poll_depth(ctx["redis"], queue, telemetry, depth_interval_seconds))

    async def stop(ctx: dict[Any, Any]) -> None:
        telemetry, task = ctx.pop(_TELEMETRY, None), ctx.pop(_DEPTH_TASK, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if telemetry is not None:
            telemetry.stop()

    async def job_ended(ctx: dict[Any, Any]) -> None:
        telemetry = ctx.get(_TELEMETRY)
        if telemetry is not None:
            await _record_job(ctx, telemetry, queue, deserializer)

    hooks = {
        "on_startup": _chain(values.get("on_startup"), _harmless(start), host_first=True),
        "on_shutdown": _chain(values.get("on_shutdown"), _harmless(stop), host_first=False),
        "after_job_end": _chain(values.get("after_job_end"), _harmless(job_ended), host_first=False),
        _MARK: True,
    }
    if isinstance(settings, dict):
        return {**settings, **hooks}  # type: ignore[return-value]
    for name, hook in hooks.items():
        setattr(settings, name, hook)
    return settings


async def _record_job(ctx: dict[Any, Any], telemetry: WorkerTelemetry, queue: str, deserializer: Any) -> None:
    redis = ctx["redis"]
    result = await Job(ctx["job_id"], redis, _queue_name=queue, _deserializer=deserializer).result_info()
    if result is None:
        if await redis.zscore(queue, ctx["job_id"]) is None:  # finished, not waiting for a retry
            _once.warning("arq-no-result", "arq kept no result for a job; usagemeter cannot count it")
        return
    duration = (result.finish_time - result.start_time).total_seconds()
    telemetry.job_finished(result.function, JOB_COMPLETED if result.success else JOB_FAILED, duration)


async def _poll_depth(redis: Any, queue: str, telemetry: WorkerTelemetry, interval: float) -> None:
    while True:
        try:
            telemetry.set_queue_depth(int(await redis.zcard(queue)))
        except Exception:  # Redis hiccups must not stop the worker; the depth is reported as unknown meanwhile
            telemetry.set_queue_depth(None)
            _once.warning("arq-depth", "usagemeter could not read the depth of arq queue %s", queue, exc_info=True)
        await asyncio.sleep(interval)


def _harmless(hook: Hook) -> Hook:
    async def run(ctx: dict[Any, Any]) -> None:
        try:
            await hook(ctx)
        except Exception:  # telemetry must never fail a job or the worker's start and stop
            _once.warning(f"arq-hook:{hook.__name__}", "usagemeter's arq %s hook failed", hook.__name__, exc_info=True)

    return run


def _chain(host: Hook | None, ours: Hook, *, host_first: bool) -> Hook:
    if host is None:
        return ours
    first, second = (host, ours) if host_first else (ours, host)

    async def chained(ctx: dict[Any, Any]) -> None:
        await first(ctx)
        await second(ctx)

    return chained
