"""The SQL Grafana's ClickHouse plugin issues for a trace-id lookup in OpenTelemetry trace mode.

Reproduced from the plugin's trace query builder (grafana/clickhouse-datasource 4.20.0,
``src/data/sqlGenerator.ts`` ``generateTraceIdQuery``, with the OTel schema ``latest``
column map of ``src/otel.ts``): when ``<traces table>_trace_id_ts`` exists with
``TraceId``, ``Start`` and ``End`` columns, the plugin reads the trace's window from it
and scans only that window of the traces table.
"""

from __future__ import annotations

#: The columns the plugin requires of the lookup table before it uses it.
LOOKUP_COLUMNS = ("TraceId", "Start", "End")
#: The suffix the plugin appends to the traces table to find the lookup table.
LOOKUP_SUFFIX = "_trace_id_ts"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tags(column: str) -> str:
    return f"arrayMap(key -> map('key', key, 'value',{_ident(column)}[key]), mapKeys({_ident(column)}))"


def trace_id_query(database: str, table: str, trace_id: str) -> str:
    """The plugin's query for one trace, using the lookup table (as it does when the table exists)."""
    lookup = f"{_ident(database)}.{_ident(table + LOOKUP_SUFFIX)}"
    fields = "arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes))"
    parts = [
        f"WITH '{trace_id}' as trace_id, (SELECT min(Start) FROM {lookup} WHERE TraceId = trace_id) as trace_start,",
        f"(SELECT max(End) + 1 FROM {lookup} WHERE TraceId = trace_id) as trace_end",
        'SELECT "TraceId" as traceID, "SpanId" as spanID, "ParentSpanId" as parentSpanID,',
        '"ServiceName" as serviceName, "SpanName" as operationName,',
        'multiply(toUnixTimestamp64Nano("Timestamp"), 0.000001) as startTime,',
        'multiply("Duration", 0.000001) as duration,',
        f"{_tags('SpanAttributes')} as tags,",
        f"{_tags('ResourceAttributes')} as serviceTags,",
        "if(\"StatusCode\" IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) as statusCode,",
        "arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)),",
        f"{fields})::Tuple(name String, timestamp String, fields Array(Map(String, String))),",
        '"Events".Name, "Events".Timestamp, "Events".Attributes) AS logs,',
        f"arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID, {fields})"
        "::Tuple(traceID String, spanID String, tags Array(Map(String, String))),",
        '"Links".TraceId, "Links".SpanId, "Links".Attributes) AS references,',
        '"SpanKind" as kind,',
        '"StatusMessage" as statusMessage,',
        '"TraceState" as traceState',
        f"FROM {_ident(database)}.{_ident(table)}",
        'WHERE traceID = trace_id AND "Timestamp" >= trace_start AND "Timestamp" <= trace_end',
    ]
    return " ".join(parts)
