"""Decode, check, convert and spool one export request; shared by the gRPC and HTTP receivers.

A metrics request takes the first of these paths that applies; :meth:`Ingest._prepare_metrics` tries
them in this order, and each applies the ``feature.usage`` rule (``_checks.rule``):

=====================  ===========================================  ==========================================
path                   applies when                                 produces
=====================  ===========================================  ==========================================
1. lean pass           ``protobuf_metrics``, the body arrived as    the body as it arrived, spooled for
   (``lean_pass``,     protobuf and holds only delta                ClickHouse to decode (protobuf path)
   its bulk check      ``feature.usage`` sums whose points all
   ``bulk_points``)    pass, with plain attributes
2. checked in place    ``protobuf_metrics`` and no attribute value  the message with refused and duplicate
   (``in_place``)      is an array or a map                         points removed and cumulative sums turned
                                                                    into deltas (protobuf path)
3. row path            otherwise                                    rows per raw table
   (``row_path``)
=====================  ===========================================  ==========================================

Spans are always decoded into rows (``_checks.traces``).

A request is answered once its record is fsync'd in the spool. A resend of a
request already spooled (same content hash) is answered with success and not
stored again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from usagemeter_collector._checks.cumulative import CumulativeToDelta, Undo
from usagemeter_collector._checks.in_place import screen_metrics
from usagemeter_collector._checks.lean_pass import valid_usage_points
from usagemeter_collector._checks.outcome import Decoded
from usagemeter_collector._checks.row_path import decode_metrics
from usagemeter_collector._checks.rule import PointRules
from usagemeter_collector._checks.traces import decode_traces
from usagemeter_collector._errors import StorageUnavailable
from usagemeter_collector._spool.records import MetricsRequest, SeriesUpdate, encode_record, encode_request_record
from usagemeter_collector._spool.spool import Spool
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

METRICS_SIGNAL = b"metrics"
TRACES_SIGNAL = b"traces"
#: The metric kinds of a request that holds only ``feature.usage`` sums.
_USAGE_KINDS = ("sum",)


def content_digest(signal: bytes, body: bytes) -> bytes:
    """The identity of a request's content: the hash of its signal and (decompressed) body."""
    return hashlib.sha256(signal + b"\0" + body).digest()


class Prepared(NamedTuple):
    """A request ready for the spool: what was refused, how many items it keeps and its record body."""

    decoded: Decoded
    items: int
    body: bytes | None


def _updates(decoded: Decoded) -> list[SeriesUpdate]:
    return [(key, current) for key, _, current in decoded.undo.entries]


def prepare_rows(decoded: Decoded, digest: bytes) -> Prepared:
    """A decoded request as a record of rows."""
    if not decoded.row_count:
        return Prepared(decoded, 0, None)
    return Prepared(decoded, decoded.row_count, encode_record(digest, _updates(decoded), decoded.rows))


class Ingest:
    """Turns export requests into spooled records and OTLP responses.

    Metrics requests are kept as protobuf for ClickHouse to decode (``protobuf_metrics``),
    except those whose attributes hold arrays or maps, which are decoded into rows here.
    """

    def __init__(
        self,
        spool: Spool,
        converter: CumulativeToDelta,
        telemetry: Telemetry,
        rules: Callable[[], PointRules],
        protobuf_metrics: bool = True,
    ) -> None:
        self._spool = spool
        self._converter = converter
        self._telemetry = telemetry
        self._rules = rules
        self._protobuf_metrics = protobuf_metrics

    async def export_metrics(
        self, request: ExportMetricsServiceRequest, digest: bytes, body: bytes | None = None, *, counted: bool = True
    ) -> ExportMetricsServiceResponse:
        """Spool the request's data points; raises StorageUnavailable when they could not be made durable.

        ``body`` is the request's protobuf encoding when it arrived as one (it is spooled as is when
        nothing in it had to change). ``counted=False`` leaves the request out of the request and item
        counters (the collector's own telemetry, which would otherwise report itself).
        """
        response = ExportMetricsServiceResponse()
        telemetry = self._telemetry if counted else Telemetry()
        decoded = await self._ingest(lambda: self._prepare_metrics(request, body, digest), digest, telemetry)
        if decoded is not None and decoded.rejected:
            response.partial_success.rejected_data_points = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    async def export_traces(
        self, request: ExportTraceServiceRequest, digest: bytes, body: bytes | None = None
    ) -> ExportTraceServiceResponse:
        """Spool the request's spans; raises StorageUnavailable when they could not be made durable."""
        response = ExportTraceServiceResponse()

        def prepare() -> Prepared:
            return prepare_rows(decode_traces(request, self._rules().window), digest)

        decoded = await self._ingest(prepare, digest, self._telemetry)
        if decoded is not None and decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message()
        return response

    def _prepare_metrics(self, request: ExportMetricsServiceRequest, body: bytes | None, digest: bytes) -> Prepared:
        rules = self._rules()
        # 1. Lean pass. The receiver already parsed ``request`` in full, which vouches for the wire form of every
        # part the lean pass skips; what the lean pass accepts is then spooled as it arrived.
        if self._protobuf_metrics and body is not None:
            points = valid_usage_points(body, rules)
            if points is not None:
                kept = MetricsRequest(body, _USAGE_KINDS, points)
                return Prepared(Decoded(), points, encode_request_record(digest, [], kept))
        # 2. Checked in place, else 3. the row path.
        screened = screen_metrics(request, body, self._converter, rules) if self._protobuf_metrics else None
        if screened is None:
            return prepare_rows(decode_metrics(request, self._converter, rules), digest)
        decoded = screened.decoded
        if not screened.points:
            return Prepared(decoded, 0, None)
        kept = MetricsRequest(screened.body, screened.kinds, screened.points)
        return Prepared(decoded, screened.points, encode_request_record(digest, _updates(decoded), kept))

    async def _ingest(self, prepare: Callable[[], Prepared], digest: bytes, telemetry: Telemetry) -> Decoded | None:
        """The decoded request once spooled, or None when it is a resend of a spooled request."""
        telemetry.requests_received += 1
        if self._spool.is_duplicate(digest):
            telemetry.requests_duplicate += 1
            return None
        prepared, pending = await asyncio.to_thread(self._spool_request, prepare, digest)
        decoded = prepared.decoded
        telemetry.items_rejected += decoded.rejected
        if decoded.rejected:
            logger.info("rejected %d items: %s", decoded.rejected, decoded.error_message())
        if pending is None:
            return decoded
        # Shielded: a sender hanging up must not cancel the record, whose outcome settles the conversions.
        stored = await asyncio.shield(asyncio.wrap_future(pending))
        if not stored:
            telemetry.requests_duplicate += 1
            return None
        telemetry.items_accepted += prepared.items
        return decoded

    def _spool_request(self, prepare: Callable[[], Prepared], digest: bytes) -> tuple[Prepared, Future[bool] | None]:
        prepared = prepare()
        undo = prepared.decoded.undo
        if prepared.body is None:
            self._converter.rollback(undo)
            return prepared, None
        try:
            pending = self._spool.append(prepared.body, digest, _updates(prepared.decoded))
        except StorageUnavailable:
            # None of the request's points are stored; a retry must convert them again.
            self._converter.rollback(undo)
            raise
        pending.add_done_callback(functools.partial(self._settle, undo))
        return prepared, pending

    def _settle(self, undo: Undo, pending: Future[bool]) -> None:
        """Once the record is written (its states are in the spool's durable state) or refused."""
        if not pending.cancelled() and pending.exception() is None and pending.result():
            self._converter.settle(undo)
        else:
            self._converter.rollback(undo)
