"""Spans feed otel_traces_trace_id_ts, the lookup Grafana's plugin reads to open one trace quickly."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.collector.conftest import SERVICE
from tests.grafana.plugin_traces import LOOKUP_COLUMNS, LOOKUP_SUFFIX, trace_id_query
from usagemeter_clickhouse import Client, migrate, tables

SECOND = 1_000_000_000
#: Two hours ago, on a whole second plus a fraction, so the lookup's whole seconds are known.
T0 = (time.time_ns() // SECOND - 7200) * SECOND + 250_000_000


def _send_traces(collector: Any) -> dict[str, list[str]]:
    """Two traces through the collector; returns each trace id's span ids."""
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    spans = {}
    try:
        for offset in (0, 3600 * SECOND):
            root = tracer.start_span("chat.completion", start_time=T0 + offset)
            parent = trace.set_span_in_context(root)
            child = tracer.start_span("tool.call", context=parent, start_time=T0 + offset + 7 * SECOND)
            child.end(end_time=T0 + offset + 9 * SECOND)
            root.end(end_time=T0 + offset + 10 * SECOND)
            trace_id = f"{root.get_span_context().trace_id:032x}"
            spans[trace_id] = sorted(f"{s.get_span_context().span_id:016x}" for s in (root, child))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    return spans


def _windows(client: Client) -> dict[str, tuple[int, int]]:
    rows = client.query(
        f"SELECT TraceId, toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)) FROM {tables.TRACE_ID_TS} "
        "GROUP BY TraceId"
    ).result_rows
    return {trace_id: (start, end) for trace_id, start, end in rows}


def test_spans_through_the_collector_record_each_trace_window(collector, clickhouse):
    spans = _send_traces(collector)
    first, second = spans
    # As the exporter's view: the first and last span start of the trace, in whole seconds.
    assert _windows(clickhouse) == {
        first: (T0 // SECOND, T0 // SECOND + 7),
        second: (T0 // SECOND + 3600, T0 // SECOND + 3607),
    }


def test_the_plugins_trace_id_lookup_runs_on_the_schema_and_finds_the_whole_trace(collector, clickhouse, database):
    spans = _send_traces(collector)
    columns = clickhouse.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        parameters={"t": tables.TRACES + LOOKUP_SUFFIX},
    ).result_rows
    assert set(LOOKUP_COLUMNS) <= {name for (name,) in columns}
    for trace_id, span_ids in spans.items():
        result = clickhouse.query(trace_id_query(database, tables.TRACES, trace_id))
        found = {row[result.column_names.index("spanID")] for row in result.result_rows}
        assert sorted(found) == span_ids
        assert {row[result.column_names.index("traceID")] for row in result.result_rows} == {trace_id}


def _forget_migration_0010(client: Client) -> None:
    client.command(f"DELETE FROM {tables.SCHEMA_MIGRATIONS} WHERE Version = 10")


def test_spans_stored_before_the_migration_are_backfilled_once(collector, clickhouse):
    spans = _send_traces(collector)
    clickhouse.query("SELECT 1")  # wait for the collector's inserts
    clickhouse.command("DROP VIEW otel_traces_trace_id_ts_mv")
    clickhouse.command(f"DROP TABLE {tables.TRACE_ID_TS}")
    _forget_migration_0010(clickhouse)
    migrate(clickhouse.undrained)
    windows = _windows(clickhouse)
    assert set(windows) == set(spans)
    rows = clickhouse.query(f"SELECT count() FROM {tables.TRACE_ID_TS}").result_rows[0][0]
    # Applied again (a crash before its record): the backfill sees a filled table and adds nothing.
    _forget_migration_0010(clickhouse)
    migrate(clickhouse.undrained)
    assert clickhouse.query(f"SELECT count() FROM {tables.TRACE_ID_TS}").result_rows[0][0] == rows
    assert _windows(clickhouse) == windows


def test_on_a_clickhouse_server_the_lookup_fills_and_answers_the_plugins_query(server_clickhouse, database):
    trace_id, other = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174a4e4a6c8b2e3f1d0"
    server_clickhouse.command(
        f"INSERT INTO {tables.TRACES} (Timestamp, TraceId, SpanId, SpanName, ServiceName) VALUES "
        f"(fromUnixTimestamp64Nano({T0}), '{trace_id}', 'a1', 'chat.completion', 'backend'), "
        f"(fromUnixTimestamp64Nano({T0 + 7 * SECOND}), '{trace_id}', 'a2', 'tool.call', 'backend'), "
        f"(fromUnixTimestamp64Nano({T0 + 60 * SECOND}), '{other}', 'b1', 'chat.completion', 'backend'), "
        f"(fromUnixTimestamp64Nano({T0}), '', 'c1', 'untraced', 'backend')"
    )
    assert _windows(server_clickhouse) == {
        trace_id: (T0 // SECOND, T0 // SECOND + 7),
        other: (T0 // SECOND + 60, T0 // SECOND + 60),
    }
    result = server_clickhouse.query(trace_id_query(database, tables.TRACES, trace_id))
    assert sorted(row[result.column_names.index("spanID")] for row in result.result_rows) == ["a1", "a2"]
