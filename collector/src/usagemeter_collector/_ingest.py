"""Decode, validate, convert and store one export request; shared by the gRPC and HTTP receivers."""

from __future__ import annotations

import asyncio
import logging

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from usagemeter_collector._cumulative import CumulativeToDelta
from usagemeter_collector._decoded import Decoded
from usagemeter_collector._errors import PayloadError, StorageUnavailable
from usagemeter_collector._metrics import decode_metrics
from usagemeter_collector._traces import decode_traces
from usagemeter_collector._writer import BatchWriter

logger = logging.getLogger(__name__)


class Ingest:
    """Turns export requests into stored rows and OTLP responses."""

    def __init__(self, writer: BatchWriter, converter: CumulativeToDelta) -> None:
        self._writer = writer
        self._converter = converter

    async def export_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        """Store the request's data points; raises StorageUnavailable when they could not be committed."""
        decoded = await asyncio.to_thread(decode_metrics, request, self._converter)
        await self._store(decoded, "data points")
        response = ExportMetricsServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_data_points = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    async def export_traces(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        """Store the request's spans; raises StorageUnavailable when they could not be committed."""
        decoded = await asyncio.to_thread(decode_traces, request)
        await self._store(decoded, "spans")
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    async def _store(self, decoded: Decoded, what: str) -> None:
        if decoded.rejected:
            logger.warning("rejected %d %s: %s", decoded.rejected, what, decoded.error_message())
        if decoded.duplicates:
            logger.info("dropped %d duplicate cumulative points", decoded.duplicates)
        if not decoded.row_count:
            return
        try:
            await asyncio.wrap_future(self._writer.submit(decoded.rows))
        except (StorageUnavailable, PayloadError):
            # None of the request's rows are stored; a retry of its points must convert again.
            self._converter.rollback(decoded.undo)
            raise
