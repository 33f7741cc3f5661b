"""The OTLP/HTTP receiver: a Starlette app with POST /v1/metrics and /v1/traces."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from usagemeter_collector._errors import PayloadError, StorageUnavailable
from usagemeter_collector._ingest import Ingest
from usagemeter_collector._payload import Encoding, decompress, encoding_of, parse, serialize

logger = logging.getLogger(__name__)

METRICS_PATH = "/v1/metrics"
TRACES_PATH = "/v1/traces"
RETRY_AFTER_SECONDS = 1

_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}


@dataclass(frozen=True)
class _Signal:
    request_type: type[Message]
    export: Callable[[Any], Awaitable[Message]]


def build_http_app(ingest: Ingest, max_request_bytes: int) -> Starlette:
    """The OTLP/HTTP ASGI app storing through ``ingest``; bodies over ``max_request_bytes`` get 413."""
    signals = {
        METRICS_PATH: _Signal(ExportMetricsServiceRequest, ingest.export_metrics),
        TRACES_PATH: _Signal(ExportTraceServiceRequest, ingest.export_traces),
    }

    async def export(request: Request) -> Response:
        return await _export(request, signals[request.url.path], max_request_bytes)

    return Starlette(routes=[Route(path, export, methods=["POST"]) for path in signals])


async def _export(request: Request, signal: _Signal, max_bytes: int) -> Response:
    encoding = Encoding.JSON
    try:
        encoding = encoding_of(request.headers.get("content-type"))
        body = await _read_body(request, max_bytes)
        body = decompress(body, request.headers.get("content-encoding"), max_bytes)
        message = await asyncio.to_thread(parse, body, encoding, signal.request_type)
        response = await signal.export(message)
    except PayloadError as exc:
        logger.info("refused %s request: %s", request.url.path, exc)
        return _error(exc.status, str(exc), encoding)
    except StorageUnavailable as exc:
        return _error(503, f"data not stored, retry later: {exc}", encoding, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return Response(serialize(response, encoding), media_type=encoding.value)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadError(413, f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, encoding: Encoding, headers: dict[str, str] | None = None) -> Response:
    # OTLP/HTTP error bodies are a google.rpc.Status in the request's encoding.
    body = serialize(status_pb2.Status(code=_GRPC_CODES.get(status, code_pb2.UNKNOWN), message=message), encoding)
    return Response(body, status_code=status, media_type=encoding.value, headers=headers)
