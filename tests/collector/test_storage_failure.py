"""While ClickHouse cannot take rows, requests are acknowledged from the spool and inserted once it is back."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import T0, usage_by_user, usage_point, usage_request, wait_for
from usagemeter_clickhouse import tables

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def _post(collector, request) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )


def _grpc_export(collector, request) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=30)


def test_requests_are_spooled_while_the_table_is_gone_and_inserted_when_it_returns(collector, clickhouse):
    first = usage_request([usage_point("alice", 5, T0 + 10, start_ns=T0)], temporality=_CUMULATIVE)
    assert _post(collector, first).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 5.0}

    clickhouse.command(f"DETACH TABLE {tables.METRICS_SUM}")
    try:
        second = usage_request([usage_point("alice", 9, T0 + 20, start_ns=T0)], temporality=_CUMULATIVE)
        assert _post(collector, second).status_code == 200
        _grpc_export(collector, usage_request([usage_point("bob", 3, T0 + 30)]))
        assert wait_for(lambda: collector.telemetry.insert_retries >= 2)
        assert not collector.drained
    finally:
        clickhouse.command(f"ATTACH TABLE {tables.METRICS_SUM}")
    assert usage_by_user(clickhouse) == {"alice": 9.0, "bob": 3.0}


def test_full_spool_refuses_with_retry_hints_then_accepts_again(start_collector, clickhouse):
    collector = start_collector(spool_max_bytes=1024 * 1024)
    acked: dict[str, float] = {}
    clickhouse.command(f"DETACH TABLE {tables.METRICS_SUM}")
    try:
        refused = None
        for batch in range(200):
            points = [usage_point(f"user-{batch}-{i}", 1, T0 + i) for i in range(500)]
            response = _post(collector, usage_request(points))
            if response.status_code != 200:
                refused = response
                break
            acked.update({f"user-{batch}-{i}": 1.0 for i in range(500)})
        assert refused is not None and refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        with pytest.raises(grpc.RpcError) as err:
            # As large as the request just refused, so it cannot fit into what is left either.
            _grpc_export(collector, usage_request([usage_point(f"late-{batch}-{i}", 1, T0 + i) for i in range(500)]))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        status = rpc_status.from_call(err.value)
        assert status is not None
        retry_info = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry_info)
        assert retry_info.retry_delay.seconds == 1
    finally:
        clickhouse.command(f"ATTACH TABLE {tables.METRICS_SUM}")
    assert usage_by_user(clickhouse) == acked
    assert _post(collector, usage_request([usage_point("late", 1, T0)])).status_code == 200
    assert usage_by_user(clickhouse)["late"] == 1.0
