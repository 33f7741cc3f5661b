"""Names of the telemetry usagemeter meters, following OpenTelemetry semantic conventions."""

from __future__ import annotations

FEATURE_USAGE_METRIC = "feature.usage"
FEATURE_USAGE_UNIT = "{use}"
FEATURE_USE_SPAN = "feature.use"
USER_ID = "user.id"
FEATURE_KEY = "feature.key"
SERVICE_NAME = "service.name"
INSTRUMENTATION_SCOPE = "usagemeter_instrumentation"
