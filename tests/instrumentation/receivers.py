"""Small OTLP receivers (gRPC and HTTP/protobuf) on 127.0.0.1 that record every request they get.

Like the usagemeter collector, they recognise a resent metrics request by the SHA-256 of its
decompressed body and store it once; they can also store a request and then lose its answer.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality


def attribute_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: attribute_value(pair.value) for pair in pairs}


@dataclass
class SumPoint:
    service_name: str | None
    metric: str
    temporality: int
    monotonic: bool
    value: int | float
    attributes: dict[str, Any]


@dataclass
class GaugePoint:
    unit: str
    value: int
    attributes: dict[str, Any]


@dataclass
class HistogramPoint:
    unit: str
    count: int
    sum: float
    max: float
    attributes: dict[str, Any]


#: How the answer to a stored request is lost: kept back until the receiver stops (the client times
#: out), or sent after ``answer_delay_seconds`` (after the client gave up).
AnswerFault = Literal["withhold", "delay"]


@dataclass
class Recorder:
    """What a receiver was sent; ``hold`` cleared makes exports wait until it is set again.

    While ``reject_metrics`` is positive, metric exports are refused (and not recorded), one per unit.
    A metrics request whose body was already stored is answered with success and not stored again
    (counted in ``duplicates``); ``bodies`` keeps the digest of every metrics request in arrival order.
    """

    metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    traces: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reject_metrics: int = 0
    rejected: int = 0
    digests: list[bytes] = field(default_factory=list)
    stored: set[bytes] = field(default_factory=set)
    duplicates: int = 0
    answer_faults: deque[AnswerFault] = field(default_factory=deque)
    lost_answers: list[bytes] = field(default_factory=list)
    answer_delay_seconds: float = 2.0
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.hold.set()

    def lose_answers(self, *faults: AnswerFault) -> None:
        """Store the next metrics requests (one per fault) but lose their answers."""
        with self.lock:
            self.answer_faults.extend(faults)

    def add_metrics(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, headers: dict[str, str], body: bytes
    ) -> bool:
        """Record the request unless its body was stored before; ``False`` when it is refused."""
        self.arrived.set()
        self.hold.wait()
        digest = hashlib.sha256(body).digest()
        with self.lock:
            if self.reject_metrics > 0:
                self.reject_metrics -= 1
                self.rejected += 1
                return False
            self.digests.append(digest)
            if digest in self.stored:
                self.duplicates += 1
            else:
                self.stored.add(digest)
                self.metrics.append(request)
                self.headers.append(headers)
            fault = self.answer_faults.popleft() if self.answer_faults else None
            if fault is not None:
                self.lost_answers.append(digest)
        if fault == "withhold":
            self.released.wait()
        elif fault == "delay":
            time.sleep(self.answer_delay_seconds)
        return True

    def add_traces(self, request: trace_service_pb2.ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        self.hold.wait()
        with self.lock:
            self.traces.append(request)
            self.headers.append(headers)

    def sum_points(self) -> Iterator[SumPoint]:
        for service, metric in self.metrics_of_kind("sum"):
            for point in metric.sum.data_points:
                value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
                yield SumPoint(
                    service,
                    metric.name,
                    metric.sum.aggregation_temporality,
                    metric.sum.is_monotonic,
                    value,
                    attributes(point.attributes),
                )

    def metrics_of_kind(self, kind: str) -> Iterator[tuple[str | None, Any]]:
        """(service.name, metric) of every received metric whose data is ``kind`` (gauge, histogram, …)."""
        with self.lock:
            requests = list(self.metrics)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                service = attributes(resource_metrics.resource.attributes).get("service.name")
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        if metric.WhichOneof("data") == kind:
                            yield service, metric

    def gauge_points(self, metric: str) -> list[GaugePoint]:
        """Every point of gauge ``metric``, in arrival order."""
        found = []
        for _, received in self.metrics_of_kind("gauge"):
            if received.name == metric:
                for point in received.gauge.data_points:
                    assert point.WhichOneof("value") == "as_int", f"{metric} is an integer gauge"
                    found.append(GaugePoint(received.unit, point.as_int, attributes(point.attributes)))
        return found

    def histogram_points(self, metric: str) -> list[HistogramPoint]:
        """Every point of histogram ``metric``, in arrival order."""
        found = []
        for _, received in self.metrics_of_kind("histogram"):
            if received.name == metric:
                assert (
                    received.histogram.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
                )
                for point in received.histogram.data_points:
                    found.append(
                        HistogramPoint(received.unit, point.count, point.sum, point.max, attributes(point.attributes))
                    )
        return found

    def metric_totals(self, metric: str) -> Counter[tuple[tuple[str, Any], ...]]:
        """Sum of delta points of ``metric`` per sorted attribute items."""
        totals: Counter[tuple[tuple[str, Any], ...]] = Counter()
        for point in self.sum_points():
            if point.metric == metric:
                assert point.temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
                totals[tuple(sorted(point.attributes.items()))] += int(point.value)
        return totals

    def usage_micros(self) -> Counter[tuple[tuple[str, Any], ...]]:
        """Exact ``feature.usage`` totals in micro-units per sorted attribute items (dimensions included)."""
        totals: Counter[tuple[tuple[str, Any], ...]] = Counter()
        for point in self.sum_points():
            if point.metric == "feature.usage":
                totals[tuple(sorted(point.attributes.items()))] += round(Fraction(point.value) * 10**6)
        return totals

    def usage_totals(self) -> Counter[tuple[str, str]]:
        """Sum of delta ``feature.usage`` points per (user.id, feature.key)."""
        totals: Counter[tuple[str, str]] = Counter()
        for point in self.sum_points():
            if point.metric == "feature.usage":
                assert point.temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
                assert point.monotonic
                totals[(point.attributes["user.id"], point.attributes["feature.key"])] += int(point.value)
        return totals

    def spans(self) -> list[tuple[str, dict[str, Any], str | None]]:
        """(name, attributes, service.name) of every span received."""
        with self.lock:
            requests = list(self.traces)
        found: list[tuple[str, dict[str, Any], str | None]] = []
        for request in requests:
            for resource_spans in request.resource_spans:
                service = attributes(resource_spans.resource.attributes).get("service.name")
                for scope in resource_spans.scope_spans:
                    found.extend((span.name, attributes(span.attributes), service) for span in scope.spans)
        return found


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class _MetricsService:
    """MetricsService/Export taking the request's bytes as they arrived, to hash them like the collector."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def export(self, body: bytes, context: grpc.ServicerContext) -> Any:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        if not self._recorder.add_metrics(request, dict(context.invocation_metadata()), body):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused by the test receiver")
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        export = grpc.unary_unary_rpc_method_handler(
            self.export,
            request_deserializer=None,
            response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.metrics.v1.MetricsService", {"Export": export}
        )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._recorder.add_traces(request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class GrpcReceiver:
    """A real OTLP/gRPC server on 127.0.0.1."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        # Room for handlers that keep an answer back while new requests arrive.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers((_MetricsService(self.recorder).handler(),))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self.recorder), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self.recorder.hold.set()
        self.recorder.released.set()
        self._server.stop(grace=None)


_HTTP_MESSAGES: dict[str, Any] = {
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "/v1/traces": trace_service_pb2.ExportTraceServiceRequest,
}


class HttpReceiver:
    """A real OTLP/HTTP (binary protobuf) server on 127.0.0.1."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        recorder = self.recorder

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message_type = _HTTP_MESSAGES.get(self.path)
                if message_type is None:
                    self.send_error(404, f"no OTLP signal at {self.path}")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = message_type.FromString(body)
                headers = {key.lower(): value for key, value in self.headers.items()}
                if self.path == "/v1/metrics":
                    if not recorder.add_metrics(request, headers, body):
                        self.send_error(400, "refused by the test receiver")
                        return
                else:
                    recorder.add_traces(request, headers)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # An answer kept back past the client's timeout finds the socket closed.
                with contextlib.suppress(OSError):
                    super().handle()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.recorder.hold.set()
        self.recorder.released.set()
        self._server.shutdown()
        self._server.server_close()
