"""Usage points too large to sum are refused at ingest, so the API's totals are always exact numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from pydantic import SecretStr

from tests.collector.conftest import post_metrics, usage_point, usage_request, wait_drained
from usagemeter_api import ApiSettings, create_app, mint_token
from usagemeter_clickhouse import connect

_SECRET = "collector-test-secret-0123456789abcdef"
_FEATURE = "chat_messages"


@pytest.fixture
def api(chdb_url: str, database: str, clickhouse) -> Iterator[TestClient]:
    settings = ApiSettings(jwt_secret=SecretStr(_SECRET), quota_live_usage=False)
    with TestClient(create_app(settings, lambda: connect(chdb_url, database))) as client:
        yield client


def test_points_of_1e308_are_refused_and_the_quota_total_stays_a_number(collector, api):
    # A second ago: inside the current period whatever the time of the run.
    now = time.time_ns() - 10**9
    request = usage_request(
        [
            usage_point("alice", 1e308, now, feature=_FEATURE),
            usage_point("alice", 1e308, now, feature=_FEATURE),
            usage_point("alice", 3, now, feature=_FEATURE),
            usage_point("alice", 1e15, now, feature=_FEATURE),
        ]
    )
    response = post_metrics(collector.http_port, request)
    assert ExportMetricsServiceResponse.FromString(response.content).partial_success.rejected_data_points == 2
    wait_drained()
    token = mint_token(_SECRET, "alice")
    quota = api.get(f"/api/v1/quotas/{_FEATURE}", headers={"Authorization": f"Bearer {token}"})
    assert quota.status_code == 200, quota.text
    assert quota.json()["used"] == 1e15 + 3
