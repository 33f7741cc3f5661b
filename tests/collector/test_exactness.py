"""Resent requests and re-inserted segments count once; out-of-range points are refused with a reason."""

from __future__ import annotations

import shutil

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from tests.collector.conftest import T0, usage_by_user, usage_point, usage_request

_DAY_NS = 86_400 * 10**9


def _post(collector, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=body,
        headers={"Content-Type": "application/x-protobuf"} | (headers or {}),
        timeout=30,
    )


def test_identical_requests_over_http_and_grpc_are_counted_once(collector, clickhouse):
    request = usage_request([usage_point("alice", 4, T0), usage_point("bob", 1, T0)])
    assert _post(collector, request.SerializeToString()).status_code == 200
    assert _post(collector, request.SerializeToString()).status_code == 200
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=30)
    assert usage_by_user(clickhouse) == {"alice": 4.0, "bob": 1.0}
    assert collector.telemetry.requests_duplicate == 2


def test_resend_is_recognised_after_restart(start_collector, clickhouse, loop_thread):
    body = usage_request([usage_point("alice", 4, T0)]).SerializeToString()
    first = start_collector()
    assert _post(first, body).status_code == 200
    loop_thread.run(first.stop())
    second = start_collector()
    assert _post(second, body).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 4.0}


def test_segment_inserted_again_after_a_crash_before_its_deletion_counts_once(
    start_collector, clickhouse, loop_thread, tmp_path
):
    # Keep the segment sealed until stop(), copy it aside, and put it back as a crash would have left it.
    first = start_collector(batch_max_delay_seconds=600)
    assert _post(first, usage_request([usage_point("alice", 6, T0)]).SerializeToString()).status_code == 200
    segments = list(first.spool.directory.glob("*.seg"))
    assert len(segments) == 1
    saved = tmp_path / "saved.seg"
    shutil.copy(segments[0], saved)
    loop_thread.run(first.stop())
    assert usage_by_user(clickhouse) == {"alice": 6.0}
    shutil.copy(saved, segments[0])
    second = start_collector()
    assert usage_by_user(clickhouse) == {"alice": 6.0}
    assert second.telemetry.inserts == 1


@pytest.mark.parametrize(
    ("when", "reason"),
    [(T0 - 40 * _DAY_NS, "older than the raw data retention"), (T0 + 30 * _DAY_NS, "too far in the future")],
)
def test_points_outside_the_time_window_are_rejected_with_a_reason(collector, clickhouse, when, reason):
    request = usage_request([usage_point("alice", 1, T0), usage_point("bob", 1, when)])
    response = _post(collector, request.SerializeToString())
    assert response.status_code == 200
    partial = ExportMetricsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_data_points == 1
    assert reason in partial.error_message
    assert usage_by_user(clickhouse) == {"alice": 1.0}


def test_ingest_tokens_are_required_when_configured(start_collector, clickhouse):
    collector = start_collector(ingest_tokens="s3cret, other")
    body = usage_request([usage_point("alice", 1, T0)]).SerializeToString()
    assert _post(collector, body).status_code == 401
    assert _post(collector, body, {"Authorization": "Bearer wrong"}).status_code == 401
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel, pytest.raises(grpc.RpcError) as err:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(usage_request([]), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _post(collector, body, {"Authorization": "Bearer other"}).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 1.0}


def test_self_telemetry_is_exposed_as_prometheus_text(collector, clickhouse):
    request = usage_request([usage_point("alice", 1, T0), usage_point(None, 1, T0)])
    assert _post(collector, request.SerializeToString()).status_code == 200
    assert usage_by_user(clickhouse) == {"alice": 1.0}
    text = httpx.get(f"http://127.0.0.1:{collector.http_port}/metrics").text
    values = dict(line.split(" ") for line in text.splitlines() if not line.startswith("#"))
    assert values["usagemeter_collector_items_accepted"] == "1"
    assert values["usagemeter_collector_items_rejected"] == "1"
    assert values["usagemeter_collector_rows_inserted"] == "1"
    assert values["usagemeter_collector_spool_bytes"] == "0"
