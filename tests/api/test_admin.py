from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.api_support import MONTH_START, SECRET, bearer, record_usage
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import connect, tables

ADMIN = bearer("root", admin=True)
TEAM = {
    "id": "team",
    "name": "Team",
    "period": "month",
    "near_limit_ratio": 0.5,
    "enforcement": "soft",
    "limits": {"chat_messages": 10, "document_export": None},
}


def test_a_fresh_install_is_seeded_from_the_plans_file(api, clickhouse):
    body = api.get("/api/v1/admin/plans", headers=ADMIN).json()
    assert body["default_plan"] == "free"
    free = next(plan for plan in body["plans"] if plan["id"] == "free")
    assert free["limits"] == {"ai_content_generation": 50, "chat_messages": 500, "document_export": 10}
    assert (free["default"], free["enforcement"]) == (True, "hard")
    stored = clickhouse.query(f"SELECT count() FROM {tables.PLANS} FINAL").result_rows[0][0]
    assert stored == 3


def test_the_seed_does_not_overwrite_stored_plans(api, make_api):
    assert api.post("/api/v1/admin/plans", json=TEAM, headers=ADMIN).status_code == 201
    restarted = make_api()
    ids = [plan["id"] for plan in restarted.get("/api/v1/admin/plans", headers=ADMIN).json()["plans"]]
    assert ids == ["enterprise", "free", "pro", "team"]


def test_created_plans_and_assignments_take_effect_at_once(api, clickhouse):
    record_usage(clickhouse, [("bob", "chat_messages", MONTH_START + timedelta(days=2), 7)])
    created = api.post("/api/v1/admin/plans", json=TEAM, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["limits"] == {"chat_messages": 10, "document_export": None}
    assigned = api.put("/api/v1/admin/users/bob/plan", json={"plan_id": "team"}, headers=ADMIN)
    assert assigned.json() == {"user_id": "bob", "plan_id": "team"}
    quota = api.get("/api/v1/quotas/chat_messages", headers=bearer("bob")).json()
    assert (quota["plan_id"], quota["used"], quota["limit"], quota["near_limit"]) == ("team", 7, 10, True)


def test_a_plan_change_mid_period_keeps_used_exact(api, clickhouse):
    record_usage(clickhouse, [("carol", "chat_messages", MONTH_START + timedelta(days=1), 40)])
    assert api.get("/api/v1/quotas/chat_messages", headers=bearer("carol")).json()["limit"] == 500
    free = {"name": "Free", "limits": {"chat_messages": 30}}
    assert api.put("/api/v1/admin/plans/free", json=free, headers=ADMIN).status_code == 200
    quota = api.get("/api/v1/quotas/chat_messages", headers=bearer("carol")).json()
    assert (quota["used"], quota["limit"], quota["exceeded"]) == (40, 30, True)
    api.post("/api/v1/admin/plans", json=TEAM, headers=ADMIN)
    api.put("/api/v1/admin/users/carol/plan", json={"plan_id": "team"}, headers=ADMIN)
    quota = api.get("/api/v1/quotas/chat_messages", headers=bearer("carol")).json()
    assert (quota["plan_id"], quota["used"], quota["limit"]) == ("team", 40, 10)


def test_changes_reach_another_process_through_clickhouse(api, make_api):
    other = make_api(plans_cache_seconds=0)
    api.post("/api/v1/admin/plans", json=TEAM | {"default": True}, headers=ADMIN)
    body = other.get("/api/v1/admin/plans", headers=ADMIN).json()
    assert body["default_plan"] == "team"
    assert [plan["id"] for plan in body["plans"] if plan["default"]] == ["team"]
    assert other.get("/api/v1/quotas", headers=bearer("newcomer")).json()["plan"]["id"] == "team"


def test_users_near_or_over_their_limits_are_listed(api, clickhouse):
    day = MONTH_START + timedelta(days=3)
    record_usage(
        clickhouse,
        [
            ("dave", "ai_content_generation", day, 45),
            ("erin", "document_export", day, 12),
            ("fay", "chat_messages", day, 3),
        ],
    )
    body = api.get("/api/v1/admin/users/near-limit", headers=ADMIN).json()
    found = [(u["user_id"], u["feature_key"], u["percent_used"], u["exceeded"]) for u in body["users"]]
    assert found == [("erin", "document_export", 120.0, True), ("dave", "ai_content_generation", 90.0, False)]
    assert body["truncated"] is False
    assert api.get("/api/v1/admin/users/near-limit?limit=1", headers=ADMIN).json()["truncated"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("post", "/api/v1/admin/plans", TEAM | {"id": "free"}, 409),
        ("post", "/api/v1/admin/plans", TEAM | {"period": "year"}, 422),
        ("post", "/api/v1/admin/plans", TEAM | {"limits": {"x": -1}}, 422),
        ("post", "/api/v1/admin/plans", TEAM | {"near_limit_ratio": 0}, 422),
        ("post", "/api/v1/admin/plans", TEAM | {"id": "bad id"}, 422),
        ("put", "/api/v1/admin/plans/gold", {"name": "Gold"}, 404),
        ("put", "/api/v1/admin/plans/free", {"name": "Free", "default": False}, 409),
        ("put", "/api/v1/admin/users/bob/plan", {"plan_id": "gold"}, 404),
        ("put", "/api/v1/admin/users/bob/plan", {}, 422),
    ],
)
def test_bad_admin_requests_are_refused_clearly(api, method, path, body, code):
    response = getattr(api, method)(path, json=body, headers=ADMIN)
    assert response.status_code == code, response.text
    assert response.json()["detail"]


def test_admin_endpoints_need_role_admin(api):
    assert api.get("/api/v1/admin/plans").status_code == 401
    assert api.get("/api/v1/admin/plans", headers=bearer("bob")).status_code == 403
    assert api.put("/api/v1/admin/users/bob/plan", json={"plan_id": "pro"}, headers=bearer("bob")).status_code == 403


def test_plan_assignments_in_the_plans_file_are_seeded(chdb_url, database, clickhouse, plans_file):
    path = plans_file('default_plan = "a"\n[plans.a]\nname = "A"\n[plans.b]\nname = "B"\n[assignments]\nzed = "b"\n')
    app = create_app(ApiSettings(jwt_secret=SecretStr(SECRET), plans_file=path), lambda: connect(chdb_url, database))
    with TestClient(app) as client:
        assert client.get("/api/v1/admin/users/zed/plan", headers=ADMIN).json()["plan_id"] == "b"
