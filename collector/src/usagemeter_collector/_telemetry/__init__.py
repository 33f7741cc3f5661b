"""The collector's own telemetry: its counters (GET /metrics) and its report as OTLP through its own ingest."""
