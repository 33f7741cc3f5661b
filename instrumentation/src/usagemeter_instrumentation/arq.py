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

Completed jobs can be metered as feature usage too: ``features`` maps a job's function name to a
feature key (one use per completed job) or to ``(feature_key, amount)`` where ``amount(result)``
takes the quantity from the job's return value, optionally with ``dimensions(result)`` as a third
item for the metadata (``{"model": ...}``)::

    instrument_worker_settings(WorkerSettings, features={
        "send_report": "report_delivery",
        "generate": ("ai_tokens", lambda result: result["tokens"], lambda result: {"model": result["model"]}),
    })

The user is the job's keyword argument ``user_id`` (``user_kwarg`` names another), else the item of
that name in a mapping the job returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from arq.constants import default_queue_name
from arq.jobs import Deserializer, Job, JobResult

from usagemeter_instrumentation._api import track_feature_use
from usagemeter_instrumentation._names import JOB_COMPLETED, JOB_FAILED
from usagemeter_instrumentation._once import OnceLogger
from usagemeter_instrumentation._worker_telemetry import WorkerTelemetry

__all__ = ["ARQ_SYSTEM", "DEFAULT_DEPTH_INTERVAL_SECONDS", "JobFeature", "instrument_worker_settings"]

ARQ_SYSTEM = "arq"
DEFAULT_DEPTH_INTERVAL_SECONDS = 1.0
Settings = TypeVar("Settings", bound="type | dict[str, Any]")
Hook = Callable[[dict[Any, Any]], Awaitable[Any]]
#: How a job function is metered: a feature key, or (feature key, amount of the result[, dimensions of it]).
JobFeature = (
    str
    | tuple[str, Callable[[Any], "int | float"]]
    | tuple[str, Callable[[Any], "int | float"], Callable[[Any], "Mapping[str, object]"]]
)

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
    features: Mapping[str, JobFeature] | None = None,
    user_kwarg: str = "user_id",
) -> Settings:
    """Add usagemeter's worker telemetry to arq ``WorkerSettings`` (a class, changed in place, or a dict, copied).

    Chains ``on_startup``, ``on_shutdown`` and ``after_job_end`` with any hooks already set: the host's
    start-up runs first, usagemeter's other hooks run first and never raise.
    The queue depth is read from Redis every ``depth_interval_seconds``. ``worker_id`` defaults to
    ``host:pid``. ``features`` meters completed jobs as feature usage (see the module's documentation),
    the user taken from the job's keyword argument ``user_kwarg``. Instrumenting the same settings twice
    changes nothing.
    """
    if depth_interval_seconds <= 0:
        raise ValueError(f"depth_interval_seconds must be positive, got {depth_interval_seconds}")
    values: dict[str, Any] = dict(settings) if isinstance(settings, dict) else dict(vars(settings))
    if values.get(_MARK):
        return settings
    queue = values.get("queue_name") or default_queue_name
    deserializer: Deserializer | None = values.get("job_deserializer")
    metering = _JobMetering(features or {}, user_kwarg)
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
            await _record_job(ctx, telemetry, queue, deserializer, metering)

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


async def _record_job(
    ctx: dict[Any, Any], telemetry: WorkerTelemetry, queue: str, deserializer: Any, metering: _JobMetering
) -> None:
    redis = ctx["redis"]
    result = await Job(ctx["job_id"], redis, _queue_name=queue, _deserializer=deserializer).result_info()
    if result is None:
        if await redis.zscore(queue, ctx["job_id"]) is None:  # finished, not waiting for a retry
            _once.warning("arq-no-result", "arq kept no result for a job; usagemeter cannot count it")
        return
    duration = (result.finish_time - result.start_time).total_seconds()
    telemetry.job_finished(result.function, JOB_COMPLETED if result.success else JOB_FAILED, duration)
    if result.success:
        metering.meter(result)


@dataclass(frozen=True)
class _MeteredJob:
    feature_key: str
    amount: Callable[[Any], int | float] | None = None
    dimensions: Callable[[Any], Mapping[str, object]] | None = None

    @classmethod
    def of(cls, function: str, use: JobFeature) -> _MeteredJob:
        """The metering of ``function`` as :func:`instrument_worker_settings` was given it."""
        parts: tuple[Any, ...] = (use,) if isinstance(use, str) else tuple(use)
        if not 1 <= len(parts) <= 3 or not isinstance(parts[0], str) or not all(map(callable, parts[1:])):
            raise ValueError(f"features[{function!r}] must be a feature key or (feature key, amount[, dimensions])")
        return cls(*parts)


class _JobMetering:
    """Feature usage of completed jobs, by function name."""

    def __init__(self, features: Mapping[str, JobFeature], user_kwarg: str) -> None:
        self.features = {function: _MeteredJob.of(function, use) for function, use in features.items()}
        self.user_kwarg = user_kwarg

    def meter(self, result: JobResult) -> None:
        """Count the completed job ``result`` if its function is metered."""
        use = self.features.get(result.function)
        if use is None:
            return
        user = self._user(result)
        if not user:
            _once.warning(f"arq-no-user:{use.feature_key}", "usagemeter found no user for a %s job", result.function)
            return
        try:
            amount = use.amount(result.result) if use.amount else 1
            dimensions = dict(use.dimensions(result.result)) if use.dimensions else {}
        except Exception:  # a result without the quantity must not fail the worker
            _once.warning(
                f"arq-amount:{result.function}",
                "usagemeter could not take the quantity of a %s job from its result",
                result.function,
                exc_info=True,
            )
            return
        track_feature_use(use.feature_key, user, amount, **dimensions)

    def _user(self, result: JobResult) -> str | None:
        user = result.kwargs.get(self.user_kwarg)
        if user is None and isinstance(result.result, Mapping):
            user = result.result.get(self.user_kwarg)
        return None if user is None else str(user)


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
