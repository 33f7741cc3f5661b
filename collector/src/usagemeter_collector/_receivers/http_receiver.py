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
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from usagemeter_collector._errors import PayloadError, StorageUnavailable, Unauthenticated
from usagemeter_collector._ingest import METRICS_SIGNAL, TRACES_SIGNAL, Ingest, content_digest
from usagemeter_collector._receivers.auth import TokenCheck
from usagemeter_collector._receivers.payload import Encoding, decompress, encoding_of, parse, serialize
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

METRICS_PATH = "/v1/metrics"
TRACES_PATH = "/v1/traces"
TELEMETRY_PATH = "/metrics"
HEALTH_PATH = "/health"

_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}


@dataclass(frozen=True)
class _Signal:
    request_type: type[Message]
    tag: bytes
    export: Callable[[Any, bytes, bytes | None], Awaitable[Message]]


@dataclass(frozen=True)
class HttpOptions:
    """How the OTLP/HTTP receiver authenticates, limits and refuses."""

    tokens: TokenCheck
    max_request_bytes: int
    retry_after_seconds: int


def build_http_app(
    ingest: Ingest, telemetry: Telemetry, options: HttpOptions, health: Callable[[bool], dict[str, Any]] | None = None
) -> Starlette:
    """The OTLP/HTTP ASGI app spooling through ``ingest``, with the collector's own metrics on GET /metrics
    and, when ``health`` is given, its state as JSON on GET /health (``health(True)`` for an accepted token)."""
    signals = {
        METRICS_PATH: _Signal(ExportMetricsServiceRequest, METRICS_SIGNAL, ingest.export_metrics),
        TRACES_PATH: _Signal(ExportTraceServiceRequest, TRACES_SIGNAL, ingest.export_traces),
    }

    async def export(request: Request) -> Response:
        response = await _export(request, signals[request.url.path], options)
        if response.status_code >= 400:
            telemetry.requests_refused += 1
        return response

    async def metrics(request: Request) -> Response:
        # The ingest tokens guard the collector's own telemetry too: it tells senders' volumes and backlogs.
        if (refused := _refusal(request, options.tokens)) is not None:
            return refused
        return PlainTextResponse(telemetry.render(), media_type="text/plain; version=0.0.4")

    async def state(request: Request) -> Response:
        # A readiness probe needs no token and gets codes only: error texts can name databases, users and hosts.
        assert health is not None
        if "authorization" not in request.headers:
            return JSONResponse(health(False))
        if (refused := _refusal(request, options.tokens)) is not None:
            return refused
        return JSONResponse(health(True))

    routes = [Route(path, export, methods=["POST"]) for path in signals]
    routes.append(Route(TELEMETRY_PATH, metrics, methods=["GET"]))
    if health is not None:
        routes.append(Route(HEALTH_PATH, state, methods=["GET"]))
    return Starlette(routes=routes)


def _refusal(request: Request, tokens: TokenCheck) -> Response | None:
    """A 401 for a request whose token is missing or not accepted; None when it may pass."""
    try:
        tokens.check(request.headers.get("authorization"))
    except Unauthenticated as exc:
        return PlainTextResponse(str(exc), status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return None


async def _export(request: Request, signal: _Signal, options: HttpOptions) -> Response:
    encoding = Encoding.JSON
    try:
        encoding = encoding_of(request.headers.get("content-type"))
        options.tokens.check(request.headers.get("authorization"))
        body = await _read_body(request, options.max_request_bytes)
        body = decompress(body, request.headers.get("content-encoding"), options.max_request_bytes)
        message = await asyncio.to_thread(parse, body, encoding, signal.request_type)
        protobuf = body if encoding is Encoding.PROTOBUF else None
        response = await signal.export(message, content_digest(signal.tag, body), protobuf)
    except Unauthenticated as exc:
        return _error(401, str(exc), encoding, {"WWW-Authenticate": "Bearer"})
    except PayloadError as exc:
        logger.info("refused %s request: %s", request.url.path, exc)
        return _error(exc.status, str(exc), encoding)
    except StorageUnavailable as exc:
        retry = {"Retry-After": str(options.retry_after_seconds)}
        return _error(503, f"data not stored, retry later: {exc}", encoding, retry)
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
