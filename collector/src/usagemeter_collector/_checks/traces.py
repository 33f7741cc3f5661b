"""ExportTraceServiceRequest → rows of ``otel_traces``.

Span kinds and status codes are stored as the OpenTelemetry Collector's
ClickHouse exporter writes them (pdata names: ``Server``, ``Internal``, ``Ok``,
``Error``, …), so Grafana's OpenTelemetry mode reads them as it expects.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from usagemeter_collector import _schema
from usagemeter_collector._checks.attributes import attribute_map
from usagemeter_collector._checks.outcome import Decoded
from usagemeter_collector._checks.rule import TimeWindow, any_unstorable_time

SPAN_KINDS: dict[int, str] = {
    Span.SPAN_KIND_UNSPECIFIED: "Unspecified",
    Span.SPAN_KIND_INTERNAL: "Internal",
    Span.SPAN_KIND_SERVER: "Server",
    Span.SPAN_KIND_CLIENT: "Client",
    Span.SPAN_KIND_PRODUCER: "Producer",
    Span.SPAN_KIND_CONSUMER: "Consumer",
}
STATUS_CODES: dict[int, str] = {
    Status.STATUS_CODE_UNSET: "Unset",
    Status.STATUS_CODE_OK: "Ok",
    Status.STATUS_CODE_ERROR: "Error",
}

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def id_problem(span: Span) -> str | None:
    """Why a span's ids are unusable, or None when they are valid."""
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE_ID:
        return "span trace_id must be 16 bytes and not all zero"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN_ID:
        return "span span_id must be 8 bytes and not all zero"
    if len(span.parent_span_id) not in (0, 8):
        return "span parent_span_id must be empty or 8 bytes"
    return None


def decode_traces(request: ExportTraceServiceRequest, window: TimeWindow | None = None) -> Decoded:
    """Rows for every span of ``request`` with valid ids starting inside ``window``; the others are rejected."""
    decoded = Decoded()
    rows = decoded.rows[_schema.TRACES]
    for resource_spans in request.resource_spans:
        resource_attributes = attribute_map(resource_spans.resource.attributes)
        service_name = resource_attributes.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                problem = id_problem(span)
                if problem is None and window is not None:
                    problem = window.problem(span.start_time_unix_nano, span.start_time_unix_nano)
                if problem is None and any_unstorable_time(span.events):
                    problem = "span event timestamp out of range"
                if problem:
                    decoded.reject(problem)
                    continue
                events, links = span.events, span.links
                rows.append(
                    (
                        span.start_time_unix_nano,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.trace_state,
                        span.name,
                        SPAN_KINDS.get(span.kind, "Unspecified"),
                        service_name,
                        resource_attributes,
                        scope.name,
                        scope.version,
                        attribute_map(span.attributes),
                        max(0, span.end_time_unix_nano - span.start_time_unix_nano),
                        STATUS_CODES.get(span.status.code, "Unset"),
                        span.status.message,
                        [e.time_unix_nano for e in events],
                        [e.name for e in events],
                        [attribute_map(e.attributes) for e in events],
                        [link.trace_id.hex() for link in links],
                        [link.span_id.hex() for link in links],
                        [link.trace_state for link in links],
                        [attribute_map(link.attributes) for link in links],
                    )
                )
    return decoded
