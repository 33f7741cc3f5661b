"""usagemeter instrumentation: count feature usage per user from a host service over OTLP.

Typical use::

    import usagemeter_instrumentation as usagemeter

    usagemeter.configure(service_name="chat-backend", endpoint="http://localhost:4317")
    usagemeter.track_feature_use("ai_content_generation", user_id, model="gpt-4o-mini", prompt_tokens=120)

Each use adds its amount (one by default; ints and floats summed exactly) to the monotonic counter
``feature.usage`` with the attributes ``user.id``, ``feature.key`` and the configured dimension
attributes, exported with delta temporality; metadata goes on a ``feature.use`` span.
Conversions go to ``conversion.count`` (:func:`track_conversion`) and background workers report
heartbeats, queue depth and finished jobs through :class:`WorkerTelemetry`. Integrations with
FastAPI and arq live in :mod:`usagemeter_instrumentation.fastapi` and :mod:`usagemeter_instrumentation.arq`.
"""

from __future__ import annotations

from usagemeter_instrumentation._api import configure, force_flush, shutdown, track_conversion, track_feature_use
from usagemeter_instrumentation._config import DEFAULT_CARDINALITY_LIMIT, DEFAULT_EXPORT_INTERVAL_MILLIS
from usagemeter_instrumentation._feature import current_user, feature, reset_current_user, set_current_user
from usagemeter_instrumentation._names import (
    FEATURE_KEY,
    FEATURE_USAGE_METRIC,
    FEATURE_USAGE_UNIT,
    FEATURE_USE_SPAN,
    JOB_COMPLETED,
    JOB_FAILED,
    USER_ID,
)
from usagemeter_instrumentation._worker_telemetry import WorkerTelemetry, default_worker_id

__all__ = [
    "DEFAULT_CARDINALITY_LIMIT",
    "DEFAULT_EXPORT_INTERVAL_MILLIS",
    "FEATURE_KEY",
    "FEATURE_USAGE_METRIC",
    "FEATURE_USAGE_UNIT",
    "FEATURE_USE_SPAN",
    "JOB_COMPLETED",
    "JOB_FAILED",
    "USER_ID",
    "WorkerTelemetry",
    "configure",
    "current_user",
    "default_worker_id",
    "feature",
    "force_flush",
    "reset_current_user",
    "set_current_user",
    "shutdown",
    "track_conversion",
    "track_feature_use",
]
