from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.api_support import MONTH_START, NOW, bearer, record_usage

TODAY = NOW.date()


def _usage(api, feature, period, user="alice", **params):
    return api.get(
        f"/api/v1/analytics/usage/{feature}", params={"period": period, **params}, headers=bearer(user, admin=False)
    )


def test_month_series_has_every_day_up_to_today(api, clickhouse):
    record_usage(
        clickhouse,
        [
            ("alice", "chat_messages", MONTH_START, 3),
            ("alice", "chat_messages", MONTH_START + timedelta(hours=23, minutes=59), 4),
            ("alice", "chat_messages", NOW - timedelta(days=1), 0.5),
            ("alice", "chat_messages", NOW, 2),
            ("alice", "chat_messages", MONTH_START - timedelta(seconds=1), 100),
            ("alice", "document_export", NOW, 100),
            ("bob", "chat_messages", NOW, 100),
        ],
    )
    response = _usage(api, "chat_messages", "month")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["feature_key"], body["period"], body["total"]) == (
        "alice",
        "chat_messages",
        "month",
        9.5,
    )
    assert body["period_start"] == MONTH_START.isoformat().replace("+00:00", "Z")
    series = {entry["day"]: entry["used"] for entry in body["series"]}
    assert len(series) == TODAY.day
    assert series[MONTH_START.date().isoformat()] == 7
    assert series[(TODAY - timedelta(days=1)).isoformat()] == 0.5
    assert series[TODAY.isoformat()] == 2
    assert sum(series.values()) == body["total"]


def test_today_and_week(make_api, clickhouse):
    wednesday = NOW + timedelta(days=2 - NOW.weekday())  # same month as NOW: the 11th to the 18th
    midnight = wednesday.replace(hour=0)
    monday = midnight - timedelta(days=2)
    record_usage(
        clickhouse,
        [
            ("alice", "ai_content_generation", midnight, 1),
            ("alice", "ai_content_generation", midnight - timedelta(minutes=1), 10),
            ("alice", "ai_content_generation", monday, 100),
            ("alice", "ai_content_generation", monday - timedelta(seconds=1), 1000),
            ("alice", "ai_content_generation", wednesday + timedelta(days=1), 10000),
        ],
    )
    api = make_api(now=wednesday)
    today = _usage(api, "ai_content_generation", "today").json()
    assert today["total"] == 1
    assert [(entry["day"], entry["used"]) for entry in today["series"]] == [(midnight.date().isoformat(), 1)]
    week = _usage(api, "ai_content_generation", "week").json()
    assert week["period_start"] == monday.isoformat().replace("+00:00", "Z")
    assert [(entry["day"], entry["used"]) for entry in week["series"]] == [
        (monday.date().isoformat(), 100),
        ((monday + timedelta(days=1)).date().isoformat(), 10),
        (midnight.date().isoformat(), 1),
    ]
    assert week["total"] == 111


def test_default_period_is_month(api):
    body = api.get("/api/v1/analytics/usage/chat_messages", headers=bearer("alice")).json()
    assert body["period"] == "month"


def test_admin_reads_another_users_usage_and_others_cannot(api, clickhouse):
    record_usage(clickhouse, [("bob", "document_export", NOW, 6)])
    admin = api.get(
        "/api/v1/analytics/usage/document_export",
        params={"period": "today", "user_id": "bob"},
        headers=bearer("root", admin=True),
    )
    assert admin.status_code == 200
    assert (admin.json()["user_id"], admin.json()["total"]) == ("bob", 6)
    assert _usage(api, "document_export", "today", user_id="bob").status_code == 403


@pytest.mark.parametrize("period", ["year", "", "TODAY", "week; DROP TABLE x"])
def test_bad_period_is_422_naming_the_allowed_values(shared_api, period):
    response = _usage(shared_api, "chat_messages", period)
    assert response.status_code == 422
    message = str(response.json()["detail"])
    for allowed in ("today", "week", "month"):
        assert allowed in message


def test_unknown_feature_is_404_naming_the_known_features(shared_api):
    response = _usage(shared_api, "teleportation", "today")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "teleportation" in detail and "ai_content_generation" in detail and "document_export" in detail


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/quotas/%00%ff",
        "/api/v1/quotas/" + "x" * 5000,
        "/api/v1/analytics/usage/'%20OR%201=1--",
        "/api/v1/quotas?user_id=" + "y" * 5000,
    ],
)
def test_hostile_input_never_causes_a_server_error(shared_api, path):
    response = shared_api.get(path, headers=bearer("root", admin=True))
    assert response.status_code in (404, 422), response.text
