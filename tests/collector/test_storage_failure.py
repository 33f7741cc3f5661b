"""When ClickHouse cannot take the rows, the sender is told to retry, and a retry is counted once."""

from __future__ import annotations

import threading

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import usage_by_user, usage_point, usage_request
from usagemeter_clickhouse import tables

_T0 = 1_900_000_000 * 10**9
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def _post(collector, request) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )


def test_failed_insert_is_retryable_and_retry_counts_once(collector, clickhouse):
    first = usage_request([usage_point("alice", 5, _T0 + 10, start_ns=_T0)], temporality=_CUMULATIVE)
    assert _post(collector, first).status_code == 200

    second = usage_request([usage_point("alice", 9, _T0 + 20, start_ns=_T0)], temporality=_CUMULATIVE)
    clickhouse.command(f"DETACH TABLE {tables.METRICS_SUM}")
    try:
        refused = _post(collector, second)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel, pytest.raises(grpc.RpcError) as err:
            metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(second, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        clickhouse.command(f"ATTACH TABLE {tables.METRICS_SUM}")

    assert _post(collector, second).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 9.0}


def test_unstorable_request_fails_alone_and_is_not_retryable(start_collector, clickhouse):
    # Two one-row requests fill one batch; the one with a timestamp past 2262 cannot be serialised.
    collector = start_collector(batch_max_rows=2, batch_max_delay_seconds=600)
    requests = {
        "bad": usage_request([usage_point("mallory", 1, 2**64 - 1)]),
        "good": usage_request([usage_point("alice", 4, _T0)]),
    }
    responses: dict[str, httpx.Response] = {}

    def send(name: str) -> None:
        responses[name] = _post(collector, requests[name])

    senders = [threading.Thread(target=send, args=(name,)) for name in requests]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert responses["good"].status_code == 200
    assert responses["bad"].status_code == 400
    assert "cannot be stored" in status_pb2.Status.FromString(responses["bad"].content).message
    assert usage_by_user(clickhouse) == {"alice": 4.0}
