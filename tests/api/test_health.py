from __future__ import annotations

import socket

import pytest

from tests.api.api_support import bearer
from usagemeter_clickhouse import connect


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable_api(make_api):
    url = f"http://127.0.0.1:{_closed_port()}"
    return make_api(client_factory=lambda: connect(url, "usagemeter"))


def test_health_reports_clickhouse_ok(api):
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "clickhouse": "ok"}


def test_health_is_degraded_when_clickhouse_is_unreachable(unreachable_api):
    response = unreachable_api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "clickhouse": "unreachable"}


def test_data_endpoints_answer_503_when_clickhouse_is_unreachable(unreachable_api):
    response = unreachable_api.get("/api/v1/quotas", headers=bearer("alice"))
    assert response.status_code == 503
    assert "ClickHouse" in response.json()["detail"]
    assert response.headers["Retry-After"]


def test_data_endpoints_answer_503_when_the_schema_is_missing(make_api, chdb_url, database):
    bare = connect(chdb_url, f"{database}_bare", create_database=True)
    try:
        api = make_api(client_factory=lambda: connect(chdb_url, f"{database}_bare"))
        response = api.get("/api/v1/quotas/chat_messages", headers=bearer("alice"))
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
    finally:
        bare.command(f"DROP DATABASE IF EXISTS `{database}_bare`")
        bare.close()


def test_openapi_documents_the_endpoints(shared_api):
    assert shared_api.get("/docs").status_code == 200
    paths = shared_api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/quotas",
        "/api/v1/quotas/{feature_key}",
        "/api/v1/analytics/usage/{feature_key}",
        "/api/v1/health",
    ):
        assert path in paths


def test_health_details_are_for_admins_only(api):
    assert api.get("/api/v1/health/details").status_code == 401
    refused = api.get("/api/v1/health/details", headers=bearer("alice"))
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]
    assert api.get("/api/v1/health/details", headers=bearer("ops", admin=True)).status_code == 200
    assert api.get("/api/v1/health").status_code == 200  # the public summary needs no token


def test_a_users_dashboard_counts_healthy_services_without_naming_them(api):
    user = api.get("/api/v1/analytics/dashboard-metrics", headers=bearer("alice")).json()["health"]
    admin = api.get("/api/v1/analytics/dashboard-metrics?user_id=alice", headers=bearer("ops", admin=True)).json()
    assert user["services"] == []
    assert (user["healthy"], user["total"], user["status"]) == (
        admin["health"]["healthy"],
        admin["health"]["total"],
        admin["health"]["status"],
    )
    assert len(admin["health"]["services"]) == admin["health"]["total"] > 0
