"""The OTLP/gRPC receiver: MetricsService/Export and TraceService/Export on a grpc.aio server.

The servicers receive the raw request bytes and parse them themselves, so a
malformed message is answered INVALID_ARGUMENT with the parser's reason
(grpc's own deserialisation would answer INTERNAL).
"""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from usagemeter_collector._errors import PayloadError, StorageUnavailable
from usagemeter_collector._ingest import Ingest

METRICS_SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name

M = TypeVar("M", bound=Message)


async def _parse(message_type: type[M], body: bytes, context: grpc.aio.ServicerContext) -> M:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        name = message_type.DESCRIPTOR.name
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf {name}: {exc}")
    return message


async def _refuse(context: grpc.aio.ServicerContext, exc: StorageUnavailable | PayloadError) -> None:
    if isinstance(exc, PayloadError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"data not stored, retry later: {exc}")


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """OTLP MetricsService storing through an :class:`Ingest`."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    async def Export(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        message = await _parse(metrics_service_pb2.ExportMetricsServiceRequest, request, context)
        try:
            return await self._ingest.export_metrics(message)
        except (StorageUnavailable, PayloadError) as exc:
            await _refuse(context, exc)
            raise


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP TraceService storing through an :class:`Ingest`."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    async def Export(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        message = await _parse(trace_service_pb2.ExportTraceServiceRequest, request, context)
        try:
            return await self._ingest.export_traces(message)
        except (StorageUnavailable, PayloadError) as exc:
            await _refuse(context, exc)
            raise


def add_otlp_services(server: grpc.aio.Server, ingest: Ingest) -> None:
    """Register the OTLP metrics and trace services on ``server``."""
    services = (
        (METRICS_SERVICE, MetricsServicer(ingest).Export, metrics_service_pb2.ExportMetricsServiceResponse),
        (TRACE_SERVICE, TraceServicer(ingest).Export, trace_service_pb2.ExportTraceServiceResponse),
    )
    for service, method, response_type in services:
        handler = grpc.unary_unary_rpc_method_handler(method, response_serializer=response_type.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
