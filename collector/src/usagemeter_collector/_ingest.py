"""Decode, validate, convert and spool one export request; shared by the gRPC and HTTP receivers.

A request is answered once its record is fsync'd in the spool. A resend of a
request already spooled (same content hash) is answered with success and not
stored again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import Future

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from usagemeter_collector._cumulative import CumulativeToDelta
from usagemeter_collector._decoded import Decoded, TimeWindow
from usagemeter_collector._errors import StorageUnavailable
from usagemeter_collector._metrics import decode_metrics
from usagemeter_collector._records import encode_record
from usagemeter_collector._spool import Spool
from usagemeter_collector._telemetry import Telemetry
from usagemeter_collector._traces import decode_traces

logger = logging.getLogger(__name__)

METRICS_SIGNAL = b"metrics"
TRACES_SIGNAL = b"traces"


def content_digest(signal: bytes, body: bytes) -> bytes:
    """The identity of a request's content: the hash of its signal and (decompressed) body."""
    return hashlib.sha256(signal + b"\0" + body).digest()


class Ingest:
    """Turns export requests into spooled records and OTLP responses."""

    def __init__(
        self, spool: Spool, converter: CumulativeToDelta, telemetry: Telemetry, window: Callable[[], TimeWindow]
    ) -> None:
        self._spool = spool
        self._converter = converter
        self._telemetry = telemetry
        self._window = window

    async def export_metrics(self, request: ExportMetricsServiceRequest, digest: bytes) -> ExportMetricsServiceResponse:
        """Spool the request's data points; raises StorageUnavailable when they could not be made durable."""
        response = ExportMetricsServiceResponse()
        decoded = await self._ingest(lambda: decode_metrics(request, self._converter, self._window()), digest)
        if decoded is not None and decoded.rejected:
            response.partial_success.rejected_data_points = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    async def export_traces(self, request: ExportTraceServiceRequest, digest: bytes) -> ExportTraceServiceResponse:
        """Spool the request's spans; raises StorageUnavailable when they could not be made durable."""
        response = ExportTraceServiceResponse()
        decoded = await self._ingest(lambda: decode_traces(request, self._window()), digest)
        if decoded is not None and decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    async def _ingest(self, decode: Callable[[], Decoded], digest: bytes) -> Decoded | None:
        """The decoded request once spooled, or None when it is a resend of a spooled request."""
        self._telemetry.requests_received += 1
        if self._spool.is_duplicate(digest):
            self._telemetry.requests_duplicate += 1
            return None
        decoded, pending = await asyncio.to_thread(self._spool_request, decode, digest)
        self._telemetry.items_rejected += decoded.rejected
        if decoded.rejected:
            logger.info("rejected %d items: %s", decoded.rejected, decoded.error_message())
        if pending is None:
            return decoded
        try:
            stored = await asyncio.wrap_future(pending)
        except StorageUnavailable:
            self._converter.rollback(decoded.undo)
            raise
        if not stored:
            self._telemetry.requests_duplicate += 1
            return None
        self._telemetry.items_accepted += decoded.row_count
        return decoded

    def _spool_request(self, decode: Callable[[], Decoded], digest: bytes) -> tuple[Decoded, Future[bool] | None]:
        decoded = decode()
        if not decoded.row_count:
            return decoded, None
        updates = [(key, current) for key, _, current in decoded.undo.entries]
        body = encode_record(digest, updates, decoded.rows)
        try:
            return decoded, self._spool.append(body, digest, updates)
        except StorageUnavailable:
            # None of the request's points are stored; a retry must convert them again.
            self._converter.rollback(decoded.undo)
            raise
