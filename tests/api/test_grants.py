"""Grants through ``/admin/grants``: recorded with who and when, listed, voided, exact in time, shared by processes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api.api_support import NOW, bearer
from usagemeter_api.domain.grants import Grant, GrantStore
from usagemeter_clickhouse import Client, connect, tables

ADMIN = bearer("root", admin=True)
GRANTS = "/api/v1/admin/grants"
_MS = timedelta(milliseconds=1)
_DEADLINE_SECONDS = 30
TOP_UP = {"user_id": "alice", "feature_key": "ai_tokens", "amount": 250_000.5, "reason": "Top-up on invoice 118"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _store(api: TestClient) -> GrantStore:
    return api.app.state.services.grants  # type: ignore[attr-defined,no-any-return]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _ids(grants: object) -> list[str]:
    return [grant.grant_id for grant in grants]  # type: ignore[attr-defined]


def test_a_grant_is_recorded_with_who_and_when_and_counts_at_once(api, clickhouse):
    created = api.post(GRANTS, json=TOP_UP | {"dimension_value": "gpt-4o"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["amount"] == 250_000.5
    assert (body["granted_by"], body["granted_at"], body["effective_from"]) == ("root", _iso(NOW), _iso(NOW))
    assert (body["status"], body["dimension_value"], body["expires_at"], body["voided_at"]) == (
        "active",
        "gpt-4o",
        None,
        None,
    )
    stored = clickhouse.query(f"SELECT toString(GrantId), Amount, GrantedBy FROM {tables.USAGE_GRANTS} FINAL")
    assert [(row[0], str(row[1]), row[2]) for row in stored.result_rows] == [
        (body["grant_id"], "250000.500000", "root")
    ]
    [held] = _store(api).active("alice", "ai_tokens", NOW)
    assert (held.grant_id, held.amount_micros, held.dimension_value) == (body["grant_id"], 250_000_500_000, "gpt-4o")
    assert _store(api).active("alice", "chat_messages", NOW) == ()
    assert _store(api).active("bob", "ai_tokens", NOW) == ()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 1.0000001}, "amount"),
        ({"amount": 10**12 + 1}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"user_id": ""}, "user_id"),
        ({"dimension_value": ""}, "dimension_value"),
        ({"effective_from": "2026-12-01T10:00:00"}, "effective_from"),
        ({"expires_at": "2026-12-01T10:00:00.0005Z"}, "expires_at"),
        ({"effective_from": "2026-12-02T00:00:00Z", "expires_at": "2026-12-01T00:00:00Z"}, "expires_at"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_grant_bodies_are_refused_naming_the_field(api, clickhouse, change, named):
    response = api.post(GRANTS, json=TOP_UP | change, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert named in response.text
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_GRANTS}").result_rows[0][0] == 0


def test_a_grant_expiring_before_its_default_start_is_refused(api):
    response = api.post(GRANTS, json=TOP_UP | {"expires_at": _iso(NOW)}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"] == "expires_at must be after effective_from"


def test_grant_endpoints_need_role_admin(api):
    grant_id = api.post(GRANTS, json=TOP_UP, headers=ADMIN).json()["grant_id"]
    void = f"{GRANTS}/{grant_id}/void"
    assert api.post(GRANTS, json=TOP_UP).status_code == 401
    assert api.get(GRANTS).status_code == 401
    assert api.post(void, json={"reason": "x"}).status_code == 401
    assert api.post(GRANTS, json=TOP_UP, headers=bearer("alice")).status_code == 403
    assert api.get(GRANTS, headers=bearer("alice")).status_code == 403
    assert api.post(void, json={"reason": "x"}, headers=bearer("alice")).status_code == 403
    assert len(api.get(GRANTS, headers=ADMIN).json()["grants"]) == 1


def test_a_voided_grant_keeps_who_and_when_and_stops_counting(api, make_api):
    grant_id = api.post(GRANTS, json=TOP_UP, headers=ADMIN).json()["grant_id"]
    later = make_api(now=NOW + timedelta(hours=1))
    voided = later.post(f"{GRANTS}/{grant_id}/void", json={"reason": "wrong user"}, headers=bearer("ops", admin=True))
    assert voided.status_code == 200, voided.text
    body = voided.json()
    assert (body["voided_by"], body["voided_at"], body["status"]) == ("ops", _iso(NOW + timedelta(hours=1)), "voided")
    assert (body["granted_by"], body["reason"], body["void_reason"]) == ("root", TOP_UP["reason"], "wrong user")
    listed = later.get(GRANTS, params={"user_id": "alice", "status": "voided"}, headers=ADMIN).json()["grants"]
    assert [(grant["grant_id"], grant["void_reason"]) for grant in listed] == [(grant_id, "wrong user")]
    assert _store(later).active("alice", "ai_tokens", NOW + timedelta(hours=1)) == ()
    again = later.post(f"{GRANTS}/{grant_id}/void", json={"reason": "again"}, headers=ADMIN)
    assert again.status_code == 409
    assert "voided at" in again.json()["detail"]


def test_voiding_an_unknown_or_malformed_grant_is_refused(api):
    unknown = api.post(f"{GRANTS}/7d4f0c52-4a3e-5b8c-8f43-0c9e2a7e1b55/void", json={"reason": "x"}, headers=ADMIN)
    assert unknown.status_code == 404
    assert "7d4f0c52-4a3e-5b8c-8f43-0c9e2a7e1b55" in unknown.json()["detail"]
    assert api.post(f"{GRANTS}/not-an-id/void", json={"reason": "x"}, headers=ADMIN).status_code == 422
    grant_id = api.post(GRANTS, json=TOP_UP, headers=ADMIN).json()["grant_id"]
    assert api.post(f"{GRANTS}/{grant_id}/void", json={"reason": ""}, headers=ADMIN).status_code == 422


def test_expiry_and_start_are_exact_to_the_millisecond(make_api):
    start, end = NOW + timedelta(minutes=5), NOW + timedelta(hours=2)
    api = make_api()
    timed = {"effective_from": _iso(start), "expires_at": _iso(end)}
    grant_id = api.post(GRANTS, json=TOP_UP | timed, headers=ADMIN).json()["grant_id"]
    store = _store(api)
    assert store.active("alice", "ai_tokens", start - _MS) == ()
    assert _ids(store.active("alice", "ai_tokens", start)) == [grant_id]
    assert _ids(store.active("alice", "ai_tokens", end - _MS)) == [grant_id]
    assert store.active("alice", "ai_tokens", end) == ()
    for moment, status in ((start - _MS, "scheduled"), (start, "active"), (end - _MS, "active"), (end, "expired")):
        listed = make_api(now=moment).get(f"{GRANTS}?status={status}", headers=ADMIN).json()["grants"]
        assert [grant["grant_id"] for grant in listed] == [grant_id], (moment, status)


def test_grants_are_listed_by_user_feature_and_status_a_page_at_a_time(api, make_api):
    ids: dict[str, str] = {}
    for name, change in {
        "active": {},
        "scheduled": {"effective_from": _iso(NOW + timedelta(days=1))},
        "expired": {"effective_from": _iso(NOW - timedelta(days=2)), "expires_at": _iso(NOW - timedelta(days=1))},
        "voided": {},
        "other_user": {"user_id": "bob"},
        "other_feature": {"feature_key": "chat_messages"},
    }.items():
        ids[name] = api.post(GRANTS, json=TOP_UP | change, headers=ADMIN).json()["grant_id"]
    api.post(f"{GRANTS}/{ids['voided']}/void", json={"reason": "duplicate"}, headers=ADMIN)
    for status in ("active", "scheduled", "expired", "voided"):
        listed = api.get(
            GRANTS, params={"status": status, "user_id": "alice", "feature_key": "ai_tokens"}, headers=ADMIN
        )
        assert [grant["grant_id"] for grant in listed.json()["grants"]] == [ids[status]], status
    by_bob = api.get(GRANTS, params={"user_id": "bob"}, headers=ADMIN).json()["grants"]
    assert [grant["grant_id"] for grant in by_bob] == [ids["other_user"]]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4} | ({} if cursor is None else {"cursor": cursor})
        page = api.get(GRANTS, params=params, headers=ADMIN).json()
        assert len(page["grants"]) <= 4
        seen += [grant["grant_id"] for grant in page["grants"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids.values())
    assert api.get(GRANTS, params={"cursor": "garbage"}, headers=ADMIN).status_code == 422
    assert api.get(GRANTS, params={"status": "pending"}, headers=ADMIN).status_code == 422
    assert api.get(GRANTS, params={"limit": 1001}, headers=ADMIN).status_code == 422


def test_a_retried_post_with_the_same_idempotency_key_records_one_grant(api, make_api, clickhouse):
    retry = {**ADMIN, "Idempotency-Key": "top-up-118"}
    first = api.post(GRANTS, json=TOP_UP, headers=retry)
    # The retry reaches another process a minute later: it answers with the grant the first one recorded.
    second = make_api(now=NOW + timedelta(minutes=1)).post(GRANTS, json=TOP_UP, headers=retry)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_GRANTS} FINAL").result_rows[0][0] == 1
    other_admin = api.post(GRANTS, json=TOP_UP, headers={**bearer("ops", admin=True), "Idempotency-Key": "top-up-118"})
    assert other_admin.json()["grant_id"] != first.json()["grant_id"]
    reused = api.post(GRANTS, json=TOP_UP | {"amount": 1}, headers=retry)
    assert reused.status_code == 422
    assert "top-up-118" in reused.json()["detail"]
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_GRANTS} FINAL").result_rows[0][0] == 2


def test_a_grant_made_in_one_process_reaches_another_through_clickhouse(api, make_api):
    other = make_api(plans_cache_seconds=0.2)
    grant_id = api.post(GRANTS, json=TOP_UP, headers=ADMIN).json()["grant_id"]
    _wait_for(lambda: _ids(_store(other).active("alice", "ai_tokens", NOW)) == [grant_id], "the grant to arrive")
    api.post(f"{GRANTS}/{grant_id}/void", json={"reason": "wrong user"}, headers=ADMIN)
    _wait_for(lambda: _store(other).active("alice", "ai_tokens", NOW) == (), "the void to arrive")


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _grant(grant_id: str, expires_at: datetime | None) -> Grant:
    return Grant(
        grant_id=grant_id,
        user_id="alice",
        feature_key="ai_tokens",
        dimension_value=None,
        amount_micros=5_000_000,
        effective_from=NOW,
        expires_at=expires_at,
        reason="test",
        granted_by="root",
        granted_at=NOW,
        voided_at=None,
        voided_by=None,
    )


def test_the_store_forgets_grants_once_they_expire(clickhouse: Client):
    clock = _Clock(NOW)
    store = GrantStore(clock)
    store.create(clickhouse, _grant("00000000-0000-4000-8000-000000000001", NOW + timedelta(hours=1)))
    store.create(clickhouse, _grant("00000000-0000-4000-8000-000000000002", None))
    store.revalidate(clickhouse)
    assert store.held() == 2
    clock.now = NOW + timedelta(hours=1)
    store.revalidate(clickhouse)
    assert store.held() == 1
    # A fresh store loads only what has not expired.
    fresh = GrantStore(clock)
    fresh.revalidate(clickhouse)
    assert _ids(fresh.active("alice", "ai_tokens", clock.now)) == ["00000000-0000-4000-8000-000000000002"]


def test_the_store_holds_its_grants_through_a_clickhouse_outage(
    chdb_url: str, database: str, clickhouse: Client, caplog: pytest.LogCaptureFixture
):
    clock = _Clock(NOW)
    writer = GrantStore(clock)
    writer.create(clickhouse, _grant("00000000-0000-4000-8000-000000000003", None))
    store = GrantStore(clock, interval_seconds=0.05)
    store.start(lambda: connect(chdb_url, database))
    try:
        _wait_for(lambda: store.held() == 1, "the first load")
        with caplog.at_level(logging.WARNING, logger="usagemeter_api.domain.grants"):
            clickhouse.command(f"RENAME TABLE {tables.USAGE_GRANTS} TO usage_grants_away")
            _wait_for(lambda: "revalidating the grant store failed" in caplog.text, "the warning")
            assert _ids(store.active("alice", "ai_tokens", NOW)) == ["00000000-0000-4000-8000-000000000003"]
            clickhouse.command(f"RENAME TABLE usage_grants_away TO {tables.USAGE_GRANTS}")
        writer.create(clickhouse, _grant("00000000-0000-4000-8000-000000000004", None))
        _wait_for(lambda: store.held() == 2, "the store to recover")
    finally:
        store.close()
    assert [record.levelname for record in caplog.records if "grant store failed" in record.message] == ["WARNING"]


def test_a_starting_api_holds_the_grants_made_before_it_at_once(clickhouse: Client, make_api):
    GrantStore(_Clock(NOW)).create(clickhouse, _grant("00000000-0000-4000-8000-000000000005", None))
    # No waiting: the first quota answer after startup already counts the grant.
    api = make_api(plans_cache_seconds=60)
    assert _ids(_store(api).active("alice", "ai_tokens", NOW)) == ["00000000-0000-4000-8000-000000000005"]
