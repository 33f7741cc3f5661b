"""Spans exported by the real OTel SDK land in otel_traces as the ClickHouse exporter shapes them."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.collector.conftest import SERVICE
from usagemeter_clickhouse import tables


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_spans_are_stored(collector, clickhouse, transport):
    if transport == "grpc":
        exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True)
    else:
        exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests", "0.9")
    try:
        with tracer.start_as_current_span("chat.completion", kind=SpanKind.SERVER) as parent:
            parent.set_attributes({"model": "m-large", "tokens": 42, "cached": True, "tags": ["a", "b"]})
            parent.add_event("quota.checked", {"remaining": 3})
            with tracer.start_as_current_span("tool.call", links=[Link(parent.get_span_context())]) as child:
                child.set_status(Status(StatusCode.ERROR, "tool failed"))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    parent_ctx, child_ctx = parent.get_span_context(), child.get_span_context()
    rows = clickhouse.query(
        "SELECT SpanName, SpanKind, TraceId, SpanId, ParentSpanId, ServiceName, ScopeName, ScopeVersion, "
        "SpanAttributes, StatusCode, StatusMessage, Events.Name, Events.Attributes, Links.SpanId, "
        f"Duration > 0, toUnixTimestamp64Nano(Timestamp) FROM {tables.TRACES} ORDER BY SpanName"
    ).result_rows
    assert rows == [
        (
            "chat.completion",
            "Server",
            f"{parent_ctx.trace_id:032x}",
            f"{parent_ctx.span_id:016x}",
            "",
            SERVICE,
            "tests",
            "0.9",
            {"model": "m-large", "tokens": "42", "cached": "true", "tags": '["a","b"]'},
            "Unset",
            "",
            ["quota.checked"],
            [{"remaining": "3"}],
            [],
            True,
            parent.start_time,
        ),
        (
            "tool.call",
            "Internal",
            f"{child_ctx.trace_id:032x}",
            f"{child_ctx.span_id:016x}",
            f"{parent_ctx.span_id:016x}",
            SERVICE,
            "tests",
            "0.9",
            {},
            "Error",
            "tool failed",
            [],
            [],
            [f"{parent_ctx.span_id:016x}"],
            True,
            child.start_time,
        ),
    ]
