from __future__ import annotations

from datetime import timedelta

from tests.api.api_support import MONTH_START, NEXT_MONTH_START, bearer, record_usage

ADMIN = bearer("root", admin=True)
CHECK = "/api/v1/quotas/ai_content_generation/check"


def test_a_hard_limit_refuses_work_that_would_pass_it(make_api, clickhouse):
    api = make_api(quota_cache_seconds=0)
    record_usage(clickhouse, [("alice", "ai_content_generation", MONTH_START + timedelta(days=1), 48)])
    body = api.get(CHECK, headers=bearer("alice")).json()
    assert (body["allowed"], body["used"], body["remaining"], body["enforcement"]) == (True, 48, 2, "hard")
    assert body["reset_at"].startswith(NEXT_MONTH_START.strftime("%Y-%m-%dT00:00:00"))
    assert api.get(CHECK + "?amount=3", headers=bearer("alice")).json()["allowed"] is False
    record_usage(clickhouse, [("alice", "ai_content_generation", MONTH_START + timedelta(days=2), 2)])
    body = api.get(CHECK, headers=bearer("alice")).json()
    assert (body["allowed"], body["remaining"], body["exceeded"]) == (False, 0, False)


def test_a_soft_limit_allows_work_past_it_and_reports_it(make_api, clickhouse):
    api = make_api(quota_cache_seconds=0)
    soft = {"name": "Free", "enforcement": "soft", "limits": {"ai_content_generation": 5}}
    assert api.put("/api/v1/admin/plans/free", json=soft, headers=ADMIN).status_code == 200
    record_usage(clickhouse, [("bob", "ai_content_generation", MONTH_START + timedelta(days=1), 9)])
    body = api.get(CHECK, headers=bearer("bob")).json()
    assert (body["allowed"], body["exceeded"], body["enforcement"], body["remaining"]) == (True, True, "soft", 0)


def test_unlimited_features_are_always_allowed(api):
    assert api.put("/api/v1/admin/users/carol/plan", json={"plan_id": "pro"}, headers=ADMIN).status_code == 200
    body = api.get("/api/v1/quotas/chat_messages/check?amount=1000000", headers=bearer("carol")).json()
    assert (body["allowed"], body["limit"], body["remaining"]) == (True, None, None)


def test_the_check_answers_within_the_cache_lifetime(make_api, clickhouse):
    api = make_api(quota_cache_seconds=30)
    assert api.get(CHECK, headers=bearer("dan")).json()["used"] == 0
    record_usage(clickhouse, [("dan", "ai_content_generation", MONTH_START + timedelta(days=1), 7)])
    assert api.get(CHECK, headers=bearer("dan")).json()["used"] == 0
    fresh = make_api(quota_cache_seconds=0)
    assert fresh.get(CHECK, headers=bearer("dan")).json()["used"] == 7


def test_bad_checks_are_refused_clearly(api):
    assert api.get(CHECK + "?amount=0", headers=bearer("eve")).status_code == 422
    assert api.get("/api/v1/quotas/teleport/check", headers=bearer("eve")).status_code == 404
    assert api.get(CHECK + "?user_id=frank", headers=bearer("eve")).status_code == 403
    assert api.get(CHECK).status_code == 401


def test_amounts_are_exact_numbers_of_at_most_six_decimals_and_bounded(make_api, clickhouse):
    api = make_api(quota_cache_seconds=0)
    record_usage(clickhouse, [("gus", "ai_content_generation", MONTH_START + timedelta(days=1), 49.5)])
    fits = api.get(CHECK + "?amount=0.5", headers=bearer("gus")).json()
    assert (fits["allowed"], fits["amount"], fits["remaining"], fits["unit"]) == (True, 0.5, 0.5, "uses")
    assert api.get(CHECK + "?amount=0.500001", headers=bearer("gus")).json()["allowed"] is False
    for bad in ("0.0000001", "-1", "1000000000001", "nan", "inf", "lots", ""):
        response = api.get(CHECK, params={"amount": bad}, headers=bearer("gus"))
        assert response.status_code == 422, bad
        assert "amount" in str(response.json()["detail"]), bad
    assert api.get(CHECK + "?amount=1000000000000", headers=bearer("gus")).json()["allowed"] is False


def test_a_single_limit_check_keeps_its_fields_and_names_the_limit_it_is_of(make_api):
    body = make_api().get(CHECK + "?amount=2", headers=bearer("hal")).json()
    assert (body["used"], body["limit"], body["remaining"], body["amount"]) == (0, 50, 50, 2)
    assert body["binding"] == {
        "window": "month",
        "kind": "month",
        "dimension_value": None,
        "frees_at": NEXT_MONTH_START.isoformat().replace("+00:00", "Z"),
        "grant_expires_at": None,
    }
    assert [limit["window"] for limit in body["limits"]] == ["month"]
    assert body["reset_at"] == body["binding"]["frees_at"]
