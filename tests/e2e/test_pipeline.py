"""The whole pipeline through the real command: OTel SDK → OTLP → collector → ClickHouse → REST API."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.conftest import wait_for
from tests.e2e.conftest import RunningUp

FEATURE = "ai_content_generation"


def _send_usage(exporter: MetricExporter, uses: dict[str, list[int]], service: str) -> None:
    """Count ``uses`` through the real SDK, one collection per list position, then shut down (flush)."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": service}))
    counter = provider.get_meter("e2e").create_counter("feature.usage", unit="{use}")
    for round_ in range(max(len(v) for v in uses.values())):
        for user, amounts in uses.items():
            if round_ < len(amounts):
                counter.add(amounts[round_], {"user.id": user, "feature.key": FEATURE})
        assert reader.force_flush(timeout_millis=30_000)
    provider.shutdown()


def _quota(up: RunningUp, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{up.api}/quotas/{FEATURE}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _quota_once_counted(up: RunningUp, token: str, used: int, **params: str) -> httpx.Response:
    """The quota answer once it counts ``used`` (the API's usage view takes in new rows within its refresh)."""

    def counted() -> httpx.Response | None:
        answer = _quota(up, token, **params)
        return answer if answer.status_code == 200 and answer.json()["used"] == used else None

    return wait_for(counted) or _quota(up, token, **params)


def test_usage_over_grpc_and_http_is_counted_exactly_per_user(up: RunningUp) -> None:
    delta = {Counter: AggregationTemporality.DELTA}
    cumulative = {Counter: AggregationTemporality.CUMULATIVE}
    grpc = GrpcMetricExporter(endpoint=f"http://127.0.0.1:{up.grpc_port}", insecure=True, preferred_temporality=delta)
    http = HttpMetricExporter(endpoint=f"http://127.0.0.1:{up.http_port}/v1/metrics", preferred_temporality=cumulative)
    _send_usage(grpc, {"ana": [3, 4], "ben": [1], "cleo": [10, 0, 2]}, "backend")
    _send_usage(http, {"ana": [5, 1], "dia": [7, 7, 7]}, "worker")
    up.wait_drained()
    expected = {"ana": 13, "ben": 1, "cleo": 12, "dia": 21}
    for user, used in expected.items():
        response = _quota_once_counted(up, up.token(user), used)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["feature_key"] == FEATURE
        assert body["used"] == used, (user, body)


def test_users_see_only_their_own_quota_and_admins_see_all(up: RunningUp) -> None:
    grpc = GrpcMetricExporter(
        endpoint=f"http://127.0.0.1:{up.grpc_port}",
        insecure=True,
        preferred_temporality={Counter: AggregationTemporality.DELTA},
    )
    _send_usage(grpc, {"eve": [2], "finn": [9]}, "backend")
    up.wait_drained()
    eve = up.token("eve")
    assert _quota_once_counted(up, eve, 2).json()["used"] == 2
    assert _quota(up, eve, user_id="eve").status_code == 200
    refused = _quota(up, eve, user_id="finn")
    assert refused.status_code == 403, refused.text
    admin = up.token("root", admin=True)
    assert _quota_once_counted(up, admin, 9, user_id="finn").json()["used"] == 9


@pytest.mark.parametrize("header", ["", "Bearer not-a-jwt"])
def test_the_api_refuses_requests_without_a_valid_token(up: RunningUp, header: str) -> None:
    response = httpx.get(f"{up.api}/quotas", headers={"Authorization": header} if header else {}, timeout=10)
    assert response.status_code == 401
