"""The demo host service: a chat backend whose AI replies are metered through usagemeter."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import usagemeter_instrumentation as instrumentation
from usagemeter.demo._traffic import (
    AI_CONTENT_GENERATION,
    DEFAULT_SEED,
    DEFAULT_USERS,
    DOCUMENT_EXPORT,
    ChatTraffic,
    FeatureUse,
    demo_users,
)

DEMO_SERVICE_NAME = "demo-chat-backend"
DEFAULT_LOG_EVERY = 100
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
) -> None:
    """Simulate users chatting with an AI assistant and report their feature usage to ``endpoint``.

    Runs until ``duration_seconds`` have passed, ``stop`` is set, or the process is
    interrupted; pending usage is flushed before returning. The run owns this process's
    usagemeter instrumentation and shuts it down at the end.
    """
    if rate_per_second <= 0:
        raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
    if duration_seconds is not None and duration_seconds < 0:
        raise ValueError(f"duration_seconds must not be negative, got {duration_seconds}")
    traffic = ChatTraffic(demo_users(users or list(DEFAULT_USERS)), seed)
    instrumentation.configure(DEMO_SERVICE_NAME, endpoint, protocol=protocol, span_sampling=DEMO_SPAN_SAMPLING)
    totals: Counter[tuple[str, str]] = Counter()
    try:
        _chat(traffic, totals, rate_per_second, duration_seconds, stop or threading.Event(), log_every)
    finally:
        instrumentation.shutdown()
        _logger.info("demo finished: %s", _summary(totals))


def _chat(
    traffic: ChatTraffic,
    totals: Counter[tuple[str, str]],
    rate_per_second: float,
    duration_seconds: float | None,
    stop: threading.Event,
    log_every: int,
) -> None:
    start = time.monotonic()
    deadline = None if duration_seconds is None else start + duration_seconds
    messages = 0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        for use in traffic.next_message():
            _report(use, totals)
        messages += 1
        if log_every > 0 and messages % log_every == 0:
            _logger.info("demo sent %d chat messages: %s", messages, _summary(totals))
        # A fixed schedule keeps the average rate even when a message takes longer to report.
        pause = start + messages / rate_per_second - time.monotonic()
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
        if pause > 0 and stop.wait(pause):
            break


def _report(use: FeatureUse, totals: Counter[tuple[str, str]]) -> None:
    instrumentation.track_feature_use(use.feature_key, use.user_id, **use.metadata)
    totals[(use.user_id, use.feature_key)] += 1


def _summary(totals: Counter[tuple[str, str]]) -> str:
    users = sorted({user for user, _ in totals})
    features = sorted({feature for _, feature in totals})
    parts = [f"{user} " + " ".join(f"{feature}={totals[(user, feature)]}" for feature in features) for user in users]
    return "; ".join(parts) or "no usage"
