"""Names of the telemetry usagemeter meters, following OpenTelemetry semantic conventions.

The collector and the API read these names from ``usagemeter_clickhouse.tables``, a copy kept
so this package needs nothing else of usagemeter's; tests/test_contract_names.py holds them equal.
"""

from __future__ import annotations

FEATURE_USAGE_METRIC = "feature.usage"
FEATURE_USAGE_UNIT = "{use}"
FEATURE_USE_SPAN = "feature.use"
USER_ID = "user.id"
FEATURE_KEY = "feature.key"
SERVICE_NAME = "service.name"
INSTRUMENTATION_SCOPE = "usagemeter_instrumentation"
COLLECTION_HOOK = "usagemeter.collection"
#: Counts the library refused to hold (its pending bound was full), per metric they belonged to.
DROPPED_METRIC = "usagemeter.instrumentation.dropped"
DROPPED_UNIT = "{count}"
DROPPED_OF = "metric.name"

CONVERSION_COUNT_METRIC = "conversion.count"
CONVERSION_COUNT_UNIT = "{conversion}"
CONVERSION_NAME = "conversion.name"

WORKER_HEARTBEAT_METRIC = "worker.heartbeat"
WORKER_QUEUE_DEPTH_METRIC = "worker.queue.depth"
WORKER_JOBS_METRIC = "worker.jobs"
WORKER_JOB_DURATION_METRIC = "worker.job.duration"
WORKER_ID = "worker.id"
QUEUE_NAME = "messaging.destination.name"
MESSAGING_SYSTEM = "messaging.system"
JOB_NAME = "job.name"
JOB_STATUS = "job.status"
JOB_COMPLETED = "completed"
JOB_FAILED = "failed"
