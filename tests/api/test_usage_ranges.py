"""Explicit from/to ranges, hourly and daily buckets, and the span metadata breakdown."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.api_support import NOW, bearer, record_spans, record_usage

DAY = NOW.replace(hour=0)
USAGE = "/api/v1/analytics/usage/chat_messages"
BREAKDOWN = "/api/v1/analytics/usage/ai_content_generation/breakdown"


def _z(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _get(api, path, user="alice", admin=False, **params):
    return api.get(path, params=params, headers=bearer(user, admin=admin))


def _series(body) -> list[tuple[str, str, int | float]]:
    return [(entry["start"], entry["end"], entry["used"]) for entry in body["series"]]


def test_hourly_series_clips_the_edge_buckets_and_sums_to_the_total(api, clickhouse):
    at = DAY + timedelta(hours=5)
    record_usage(
        clickhouse,
        [
            ("alice", "chat_messages", at + timedelta(minutes=29), 1000),  # before from
            ("alice", "chat_messages", at + timedelta(minutes=30), 1),
            ("alice", "chat_messages", at + timedelta(hours=1, seconds=59), 2),
            ("alice", "chat_messages", at + timedelta(hours=2, minutes=59), 4),
            ("alice", "chat_messages", at + timedelta(hours=3, minutes=14, seconds=30), 8),
            ("alice", "chat_messages", at + timedelta(hours=3, minutes=15), 2000),  # at to: excluded
            ("bob", "chat_messages", at + timedelta(hours=1), 3000),
            ("alice", "document_export", at + timedelta(hours=1), 4000),
        ],
    )
    start, end = at + timedelta(minutes=30), at + timedelta(hours=3, minutes=15)
    response = _get(api, USAGE, interval="hour", **{"from": _z(start), "to": _z(end)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["period"], body["interval"], body["period_start"], body["period_end"]) == (
        None,
        "hour",
        _z(start),
        _z(end),
    )
    hour = timedelta(hours=1)
    assert _series(body) == [
        (_z(start), _z(at + hour), 1),
        (_z(at + hour), _z(at + 2 * hour), 2),
        (_z(at + 2 * hour), _z(at + 3 * hour), 4),
        (_z(at + 3 * hour), _z(end), 8),
    ]
    assert body["total"] == 15 == sum(entry["used"] for entry in body["series"])


def test_daily_series_over_a_range_that_cuts_days(api, clickhouse):
    start, end = DAY - timedelta(hours=12), DAY + timedelta(days=1, hours=6)
    record_usage(
        clickhouse,
        [
            ("alice", "chat_messages", start - timedelta(minutes=1), 1000),
            ("alice", "chat_messages", start, 1),
            ("alice", "chat_messages", DAY, 2),
            ("alice", "chat_messages", DAY + timedelta(hours=23, minutes=59), 4),
            ("alice", "chat_messages", end - timedelta(minutes=1), 8.5),
            ("alice", "chat_messages", end, 2000),
        ],
    )
    body = _get(api, USAGE, **{"from": _z(start), "to": _z(end)}).json()
    assert body["interval"] == "day"
    assert _series(body) == [
        (_z(start), _z(DAY), 1),
        (_z(DAY), _z(DAY + timedelta(days=1)), 6),
        (_z(DAY + timedelta(days=1)), _z(end), 8.5),
    ]
    assert [entry["day"] for entry in body["series"]] == [
        (DAY - timedelta(days=1)).date().isoformat(),
        DAY.date().isoformat(),
        (DAY + timedelta(days=1)).date().isoformat(),
    ]
    assert body["total"] == 15.5


def test_offsets_are_read_as_utc_and_naive_times_as_utc(api, clickhouse):
    record_usage(clickhouse, [("alice", "chat_messages", DAY + timedelta(hours=12), 3)])
    local = (DAY + timedelta(hours=14)).replace(tzinfo=None).isoformat() + "+02:00"
    naive = (DAY + timedelta(hours=13)).replace(tzinfo=None).isoformat()
    body = _get(api, USAGE, interval="hour", **{"from": local, "to": naive}).json()
    assert body["period_start"] == _z(DAY + timedelta(hours=12))
    assert _series(body) == [(_z(DAY + timedelta(hours=12)), _z(DAY + timedelta(hours=13)), 3)]


def test_current_period_by_the_hour_runs_to_the_current_hour(api, clickhouse):
    record_usage(clickhouse, [("alice", "chat_messages", NOW + timedelta(minutes=30), 5)])
    body = _get(api, USAGE, period="today", interval="hour").json()
    assert (body["period_start"], body["period_end"]) == (_z(DAY), _z(DAY + timedelta(days=1)))
    assert len(body["series"]) == NOW.hour + 1
    assert body["series"][-1] == {
        "start": _z(NOW),
        "end": _z(NOW + timedelta(hours=1)),
        "day": NOW.date().isoformat(),
        "used": 5,
    }
    assert body["total"] == 5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": _z(NOW), "to": _z(NOW)}, "must be before"),
        ({"from": _z(NOW), "to": _z(NOW - timedelta(hours=1))}, "must be before"),
        ({"from": _z(NOW), "to": _z(NOW + timedelta(seconds=30))}, "to the minute"),
        ({"from": _z(NOW)}, "go together"),
        ({"to": _z(NOW)}, "go together"),
        ({"period": "week", "from": _z(NOW), "to": _z(NOW + timedelta(days=1))}, "not both"),
        ({"interval": "hour", "from": _z(NOW), "to": _z(NOW + timedelta(days=32))}, "at most 31 days"),
        ({"from": _z(NOW), "to": _z(NOW + timedelta(days=367))}, "at most 366 days"),
        ({"from": "0001-01-01T00:00:00+01:00", "to": _z(NOW)}, "from"),
        ({"from": "1960-01-01T00:00:00Z", "to": "1960-01-02T00:00:00Z"}, "between"),
        ({"from": "9999-12-31T23:59:59-05:00", "to": _z(NOW)}, "from"),
        ({"from": "yesterday", "to": _z(NOW)}, "datetime"),
        ({"interval": "minute"}, "hour"),
    ],
)
def test_bad_ranges_are_422_with_a_clear_message(shared_api, params, message):
    for path in (USAGE, BREAKDOWN):
        response = _get(shared_api, path, **params)
        assert response.status_code == 422, (path, params, response.text)
        assert message in str(response.json()["detail"]), response.text


def _spans(clickhouse):
    feature = {"user.id": "alice", "feature.key": "ai_content_generation"}
    record_spans(
        clickhouse,
        [
            (NOW, {**feature, "model": "large", "prompt_tokens": "100", "completion_tokens": "10"}),
            (NOW, {**feature, "model": "large", "prompt_tokens": "50.5", "completion_tokens": "not a number"}),
            (NOW, {**feature, "model": "large"}),
            (NOW, {**feature, "model": "small", "prompt_tokens": "7", "completion_tokens": "3"}),
            (NOW, {**feature, "prompt_tokens": "1"}),
            (NOW - timedelta(days=5), {**feature, "model": "old", "prompt_tokens": "1000"}),
            (NOW, {**feature, "user.id": "bob", "model": "large", "prompt_tokens": "1000"}),
            (NOW, {**feature, "feature.key": "chat_messages", "model": "large", "prompt_tokens": "1000"}),
        ],
    )
    record_spans(clickhouse, [(NOW, {**feature, "model": "large", "prompt_tokens": "1000"})], name="http.request")


def test_breakdown_groups_the_callers_spans_by_an_attribute(api, clickhouse):
    _spans(clickhouse)
    response = _get(api, BREAKDOWN, by="model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["by"], body["period"], body["sampled"], body["truncated"]) == (
        "alice",
        "model",
        "month",
        True,
        False,
    )
    assert body["groups"] == [
        {"value": "large", "spans": 3, "prompt_tokens": 150.5, "completion_tokens": 10},
        {"value": None, "spans": 1, "prompt_tokens": 1, "completion_tokens": 0},
        {"value": "old", "spans": 1, "prompt_tokens": 1000, "completion_tokens": 0},
        {"value": "small", "spans": 1, "prompt_tokens": 7, "completion_tokens": 3},
    ]
    limited = _get(api, BREAKDOWN, by="model", limit=1).json()
    assert [group["value"] for group in limited["groups"]] == ["large"] and limited["truncated"]
    ranged = _get(api, BREAKDOWN, **{"from": _z(NOW - timedelta(days=6)), "to": _z(NOW - timedelta(days=4))})
    assert ranged.json()["groups"] == [{"value": "old", "spans": 1, "prompt_tokens": 1000, "completion_tokens": 0}]


def test_breakdown_is_caller_scoped(api, clickhouse):
    _spans(clickhouse)
    admin = _get(api, BREAKDOWN, user="root", admin=True, user_id="bob")
    assert admin.status_code == 200
    assert [(group["value"], group["prompt_tokens"]) for group in admin.json()["groups"]] == [("large", 1000)]
    assert _get(api, BREAKDOWN, user_id="bob").status_code == 403
    assert _get(api, BREAKDOWN, user="bob").json()["groups"][0]["spans"] == 1


@pytest.mark.parametrize(
    ("params", "status"),
    [({"by": ""}, 422), ({"by": "model'] OR 1=1 --"}, 422), ({"by": "x" * 65}, 422), ({"limit": 0}, 422)],
)
def test_breakdown_rejects_bad_parameters(shared_api, params, status):
    assert _get(shared_api, BREAKDOWN, **params).status_code == status


def test_breakdown_of_an_unknown_feature_is_404(shared_api):
    response = _get(shared_api, "/api/v1/analytics/usage/teleportation/breakdown")
    assert response.status_code == 404 and "teleportation" in response.json()["detail"]
