"""The collector's own telemetry: ``counters`` (what every stage counts, served as Prometheus text on
GET /metrics) and ``self_report`` (the same counters stored as OTLP metrics through the collector's own ingest).
"""
