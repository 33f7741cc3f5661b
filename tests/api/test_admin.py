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


AI_TOKENS = {
    "unit": "tokens",
    "dimension": "model",
    "limits": [
        {"window": "5h", "limit": 1_000_000},
        {"window": "month", "limit": 20_000_000.5},
        {"window": "month", "limit": 2_000_000, "dimension_value": "gpt-4o"},
    ],
}


def _with_values(limits):
    return [{"dimension_value": None} | limit for limit in limits]


def _allow(client, *attributes):
    client.insert(tables.USAGE_DIMENSIONS, [[name, True, 1] for name in attributes], ["Attribute", "Active", "Version"])


def test_plans_are_created_and_updated_on_the_metering_model(api, clickhouse):
    _allow(clickhouse, "model")
    body = TEAM | {"features": {"ai_tokens": AI_TOKENS}}
    created = api.post("/api/v1/admin/plans", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["features"]["ai_tokens"] == AI_TOKENS | {"limits": _with_values(AI_TOKENS["limits"])}
    # The shorthand limits become features of their own; features whose only limit is uses per period show in it.
    assert plan["limits"] == {"chat_messages": 10, "document_export": None}
    assert plan["features"]["chat_messages"] == {
        "unit": "uses",
        "dimension": None,
        "limits": [{"window": "month", "limit": 10, "dimension_value": None}],
    }
    fewer = {"name": "Team", "features": {"ai_tokens": AI_TOKENS | {"limits": AI_TOKENS["limits"][:1]}}}
    updated = api.put("/api/v1/admin/plans/team", json=fewer, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    assert updated.json()["features"]["ai_tokens"]["limits"] == _with_values(AI_TOKENS["limits"][:1])
    assert list(updated.json()["features"]) == ["ai_tokens"]
    listed = api.get("/api/v1/admin/plans", headers=ADMIN).json()
    assert next(p for p in listed["plans"] if p["id"] == "team")["features"] == updated.json()["features"]


def test_a_plan_dimension_off_the_allow_list_is_refused_naming_it_and_the_list(api, clickhouse):
    _allow(clickhouse, "model", "region")
    for method, path, body in (
        ("post", "/api/v1/admin/plans", TEAM),
        ("put", "/api/v1/admin/plans/free", {"name": "Free"}),
    ):
        feature = AI_TOKENS | {"dimension": "tier"}
        response = getattr(api, method)(path, json=body | {"features": {"ai_tokens": feature}}, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == (
            "features.ai_tokens.dimension 'tier' is not on the dimension allow-list"
            " (USAGEMETER_DIMENSION_ATTRIBUTES): model, region"
        )
    ids = [plan["id"] for plan in api.get("/api/v1/admin/plans", headers=ADMIN).json()["plans"]]
    assert ids == ["enterprise", "free", "pro"]


@pytest.mark.parametrize(
    ("feature", "named"),
    [
        (AI_TOKENS | {"limits": [{"window": "5y", "limit": 1}]}, "window"),
        (AI_TOKENS | {"limits": [{"window": "5h", "limit": 0.0000001}]}, "decimals"),
        (AI_TOKENS | {"dimension": None}, "dimension_value"),
        (AI_TOKENS | {"limits": [{"window": "5h", "limit": 1}, {"window": "5h", "limit": 2}]}, "two limits"),
    ],
)
def test_bad_features_are_refused_naming_the_problem(api, clickhouse, feature, named):
    _allow(clickhouse, "model")
    response = api.post("/api/v1/admin/plans", json=TEAM | {"features": {"ai_tokens": feature}}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert named in response.text


def test_a_feature_in_both_limits_and_features_is_refused(api):
    body = TEAM | {"features": {"chat_messages": {"limits": [{"window": "day", "limit": 5}]}}}
    response = api.post("/api/v1/admin/plans", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert "chat_messages is given both in limits and in features" in response.text
    shorthand = api.post("/api/v1/admin/plans", json=TEAM | {"limits": {"chat_messages": 2.0000001}}, headers=ADMIN)
    assert shorthand.status_code == 422
    assert "more than 6 decimals" in shorthand.text
