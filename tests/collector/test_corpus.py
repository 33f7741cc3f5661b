"""Every hostile request kept in tests/corpus/otlp/ gets the answer its name promises, over HTTP and gRPC,
and the collector goes on storing valid requests exactly."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TypeVar

import grpc
import httpx
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.collector.conftest import T0, post_metrics, usage_by_user, usage_point, usage_request
from tests.collector.hostile import CORPUS, GRPC_METHODS, HTTP_PATHS

M = TypeVar("M", ExportMetricsServiceResponse, ExportTraceServiceResponse, status_pb2.Status)

_MEDIA_TYPES = {"pb": "application/x-protobuf", "json": "application/json"}
_GRPC_CODES = {200: grpc.StatusCode.OK, 400: grpc.StatusCode.INVALID_ARGUMENT}
_FILES = sorted(path for path in CORPUS.iterdir() if path.name != "README.md")


class _Entry:
    """One corpus file and what its name says about it."""

    def __init__(self, path: Path) -> None:
        parts = path.name.split(".")
        self.compressed = parts[-1] == "gz"
        if self.compressed:
            parts.pop()
        self.signal, _, status, encoding = parts[0], parts[1], parts[2], parts[3]
        self.status = int(status)
        self.media_type = _MEDIA_TYPES[encoding]
        self.body = path.read_bytes()

    def post(self, client: httpx.Client) -> httpx.Response:
        headers = {"Content-Type": self.media_type} | ({"Content-Encoding": "gzip"} if self.compressed else {})
        return client.post(HTTP_PATHS[self.signal], content=self.body, headers=headers)

    def rejected(self, response: httpx.Response) -> int:
        """The points or spans a 200 answer says were refused."""
        if self.signal == "metrics":
            return self._decode(response.content, ExportMetricsServiceResponse()).partial_success.rejected_data_points
        return self._decode(response.content, ExportTraceServiceResponse()).partial_success.rejected_spans

    def refusal(self, response: httpx.Response) -> status_pb2.Status:
        return self._decode(response.content, status_pb2.Status())

    def _decode(self, content: bytes, message: M) -> M:
        if self.media_type == _MEDIA_TYPES["json"]:
            return json_format.Parse(content, message)
        message.ParseFromString(content)
        return message

    def grpc_code(self, channel: grpc.Channel) -> grpc.StatusCode:
        export = channel.unary_unary(GRPC_METHODS[self.signal])
        try:
            export(gzip.decompress(self.body) if self.compressed else self.body, timeout=30)
        except grpc.RpcError as failure:
            return failure.code()
        return grpc.StatusCode.OK


def test_the_corpus_is_not_empty() -> None:
    assert len(_FILES) >= 10
    assert {path.name.split(".")[0] for path in _FILES} == set(HTTP_PATHS)


def test_every_corpus_request_gets_its_answer_and_valid_requests_are_still_stored(start_collector, clickhouse) -> None:
    # The files' points keep the times they were made with: a retention reaching back far enough keeps each
    # point refused for the rule the file was kept for, not for its age.
    collector = start_collector(raw_retention_days=36_500)
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.http_port}", timeout=30) as client:
        for path in _FILES:
            entry = _Entry(path)
            response = entry.post(client)
            assert response.status_code == entry.status, (path.name, response.content[:300])
            if entry.status == 200:
                # The accepted ones hold only points to refuse.
                assert entry.rejected(response), path.name
            else:
                assert entry.refusal(response).message, path.name
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        for path in _FILES:
            entry = _Entry(path)
            if entry.media_type == _MEDIA_TYPES["pb"]:
                assert entry.grpc_code(channel) == _GRPC_CODES[entry.status], path.name
    assert post_metrics(collector.http_port, usage_request([usage_point("after", 2.0, T0)])).status_code == 200
    assert usage_by_user(clickhouse) == {"after": 2.0}
    assert collector.telemetry.segments_quarantined == 0
