"""The OTLP/gRPC receiver: MetricsService/Export and TraceService/Export on a grpc.aio server.

The servicers receive the raw request bytes and parse them themselves, so a
malformed message is answered INVALID_ARGUMENT with the parser's reason
(grpc's own deserialisation would answer INTERNAL). A full spool is answered
UNAVAILABLE with a ``google.rpc.RetryInfo`` detail, which OTel exporters honour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from usagemeter_collector._errors import PayloadError, StorageUnavailable, Unauthenticated
from usagemeter_collector._ingest import METRICS_SIGNAL, TRACES_SIGNAL, Ingest, content_digest
from usagemeter_collector._receivers.auth import TokenCheck

METRICS_SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)


async def _parse(message_type: type[M], body: bytes, context: grpc.aio.ServicerContext) -> M:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        name = message_type.DESCRIPTOR.name
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf {name}: {exc}")
    return message


async def _retry_later(context: grpc.aio.ServicerContext, message: str, retry_after_seconds: int) -> None:
    retry_info = any_pb2.Any()
    retry_info.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_seconds)))
    status = rpc_status.to_status(status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[retry_info]))
    await context.abort(status.code, status.details, status.trailing_metadata)


class _Export:
    """One Export method: authenticate, parse, ingest, and map failures to gRPC statuses."""

    def __init__(
        self,
        request_type: type[M],
        signal: bytes,
        ingest: Callable[[M, bytes, bytes], Awaitable[R]],
        tokens: TokenCheck,
        retry_after_seconds: int,
    ) -> None:
        self._request_type = request_type
        self._signal = signal
        self._ingest = ingest
        self._tokens = tokens
        self._retry_after = retry_after_seconds

    async def export(self, request: bytes, context: grpc.aio.ServicerContext) -> Message:
        """The Export RPC."""
        try:
            self._tokens.check(dict(context.invocation_metadata() or ()).get("authorization"))
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        message = await _parse(self._request_type, request, context)
        try:
            return await self._ingest(message, content_digest(self._signal, request), request)
        except PayloadError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise
        except StorageUnavailable as exc:
            await _retry_later(context, f"data not stored, retry later: {exc}", self._retry_after)
            raise


def add_otlp_services(server: grpc.aio.Server, ingest: Ingest, tokens: TokenCheck, retry_after_seconds: int) -> None:
    """Register the OTLP metrics and trace services on ``server``."""
    metrics = _Export(
        metrics_service_pb2.ExportMetricsServiceRequest,
        METRICS_SIGNAL,
        ingest.export_metrics,
        tokens,
        retry_after_seconds,
    )
    traces = _Export(
        trace_service_pb2.ExportTraceServiceRequest, TRACES_SIGNAL, ingest.export_traces, tokens, retry_after_seconds
    )
    services = (
        (METRICS_SERVICE, metrics, metrics_service_pb2.ExportMetricsServiceResponse),
        (TRACE_SERVICE, traces, trace_service_pb2.ExportTraceServiceResponse),
    )
    for service, method, response_type in services:
        handler = grpc.unary_unary_rpc_method_handler(
            method.export, response_serializer=response_type.SerializeToString
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
