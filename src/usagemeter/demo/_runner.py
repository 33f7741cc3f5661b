"""The demo host service: a chat backend whose AI replies are metered through usagemeter.

Besides the chat it signs up and upgrades users (``conversion.count``) and hands report jobs to
a background worker whose heartbeats, queue depth and jobs are reported as ``worker.*`` metrics:
an arq worker over Redis when a Redis URL is given, an in-process thread otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import usagemeter_instrumentation as instrumentation
from usagemeter.demo._operations import (
    DEFAULT_JOB_FAILURE_RATE,
    BusinessTraffic,
    ReportsService,
    ReportsWorker,
    report_conversions,
)
from usagemeter.demo._quota_gate import admitted
from usagemeter.demo._traffic import (
    AI_CONTENT_GENERATION,
    DEFAULT_SEED,
    DEFAULT_USERS,
    DOCUMENT_EXPORT,
    MODEL_ATTRIBUTE,
    ChatTraffic,
    FeatureUse,
    demo_users,
)

DEMO_SERVICE_NAME = "demo-chat-backend"
DEFAULT_LOG_EVERY = 100
FINAL_FLUSH_MILLIS = 2_000
# Every AI reply and export is traced, so their model, tokens and format can be drilled into.
DEMO_SPAN_SAMPLING = {AI_CONTENT_GENERATION: 1.0, DOCUMENT_EXPORT: 1.0}

_logger = logging.getLogger("usagemeter.demo")


def run_demo(
    endpoint: str,
    *,
    users: list[str] | None = None,
    rate_per_second: float = 5.0,
    duration_seconds: float | None = None,
    stop: threading.Event | None = None,
    protocol: str | None = None,
    seed: int = DEFAULT_SEED,
    log_every: int = DEFAULT_LOG_EVERY,
    redis_url: str | None = None,
    job_failure_rate: float = DEFAULT_JOB_FAILURE_RATE,
    allows: Callable[[FeatureUse], bool] | None = None,
) -> None:
    """Simulate users chatting with an AI assistant and report their feature usage to ``endpoint``.

    Alongside, users sign up and upgrade now and then, and report jobs go to a "reports" worker:
    with ``redis_url``, an arq worker on that Redis instrumented by
    :func:`usagemeter_instrumentation.arq.instrument_worker_settings` (raises
    ``ReportsQueueUnavailable`` when Redis cannot be reached); without, an in-process thread.
    ``job_failure_rate`` of the jobs fail (by default few enough that the worker reads healthy).
    With ``allows`` (e.g. :meth:`QuotaGate.allows`), each use is asked for first and a refused one
    is not made, as a host does before metered work.
    Runs until ``duration_seconds`` have passed, ``stop`` is set, or the process is
    interrupted; pending usage is flushed before returning. The run owns this process's
    usagemeter instrumentation and shuts it down at the end.
    """
    if rate_per_second <= 0:
        raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
    if duration_seconds is not None and duration_seconds < 0:
        raise ValueError(f"duration_seconds must not be negative, got {duration_seconds}")
    user_ids = users or list(DEFAULT_USERS)
    business = BusinessTraffic(user_ids, seed, job_failure_rate)
    worker = _reports_worker(redis_url)
    host = _DemoHost(ChatTraffic(demo_users(user_ids), seed), business, worker, allows)
    instrumentation.configure(
        DEMO_SERVICE_NAME,
        endpoint,
        protocol=protocol,
        span_sampling=DEMO_SPAN_SAMPLING,
        dimension_attributes=(MODEL_ATTRIBUTE,),
    )
    try:
        host.worker.start()
    except Exception:
        instrumentation.shutdown()
        raise
    try:
        _chat(host, rate_per_second, duration_seconds, stop or threading.Event(), log_every)
    finally:
        # The worker's last heartbeat and queue depth go out before it stops reporting them.
        instrumentation.force_flush(FINAL_FLUSH_MILLIS)
        host.worker.stop()
        instrumentation.shutdown()
        _logger.info("demo finished: %s", host.summary())


def _reports_worker(redis_url: str | None) -> ReportsService:
    if redis_url is None:
        return ReportsWorker()
    from usagemeter.demo._arq import ArqReportsWorker  # arq is needed only with Redis

    return ArqReportsWorker(redis_url)


class _DemoHost:
    """The simulated traffic, the reports worker, and what has been reported so far."""

    def __init__(
        self,
        traffic: ChatTraffic,
        business: BusinessTraffic,
        worker: ReportsService,
        allows: Callable[[FeatureUse], bool] | None = None,
    ) -> None:
        self.traffic = traffic
        self.business = business
        self.worker = worker
        self.allows = allows
        self.usage: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[str] = Counter()
        self.conversions: Counter[str] = Counter()

    def next_message(self) -> None:
        uses = self.traffic.next_message()
        done = uses if self.allows is None else admitted(uses, self.allows)
        self.refused.update(use.feature_key for use in uses if use not in done)
        for use in done:
            _report(use, self.usage)
        events = self.business.next_events()
        report_conversions(events.conversions, self.conversions)
        for job in events.jobs:
            self.worker.submit(job)

    def summary(self) -> str:
        conversions = " ".join(f"{name}={count}" for name, count in sorted(self.conversions.items()))
        jobs = " ".join(f"{name}:{status}={count}" for (name, status), count in sorted(self.worker.finished.items()))
        refused = " ".join(f"{feature}={count}" for feature, count in sorted(self.refused.items()))
        summary = f"{_summary(self.usage)}; conversions {conversions or 'none'}; jobs {jobs or 'none'}"
        return summary + (f"; refused over quota {refused}" if refused else "")


def _chat(
    host: _DemoHost,
    rate_per_second: float,
    duration_seconds: float | None,
    stop: threading.Event,
    log_every: int,
) -> None:
    start = time.monotonic()
    deadline = None if duration_seconds is None else start + duration_seconds
    messages = 0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        host.next_message()
        messages += 1
        if log_every > 0 and messages % log_every == 0:
            _logger.info("demo sent %d chat messages: %s", messages, host.summary())
        # A fixed schedule keeps the average rate even when a message takes longer to report.
        pause = start + messages / rate_per_second - time.monotonic()
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
        if pause > 0 and stop.wait(pause):
            break


def _report(use: FeatureUse, totals: Counter[tuple[str, str]]) -> None:
    instrumentation.track_feature_use(use.feature_key, use.user_id, use.amount, **use.metadata)
    totals[(use.user_id, use.feature_key)] += use.amount


def _summary(totals: Counter[tuple[str, str]]) -> str:
    users = sorted({user for user, _ in totals})
    features = sorted({feature for _, feature in totals})
    parts = [f"{user} " + " ".join(f"{feature}={totals[(user, feature)]}" for feature in features) for user in users]
    return "; ".join(parts) or "no usage"
