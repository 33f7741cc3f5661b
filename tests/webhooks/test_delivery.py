"""Threshold webhooks end to end: usage in ClickHouse, the API's view and detector, its outbox and sender, and a real
receiver process that verifies every signature, through receiver outages, 4xx answers, an API restart and two replicas.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.api.api_support import bearer, record_usage
from tests.conftest import wait_for
from usagemeter_clickhouse import Client, tables

ADMIN = bearer("root", admin=True)
HOOKS = "/api/v1/admin/webhooks"
#: Replicas in these tests beat often and expire soon, so a stopped one's share moves within seconds.
FAST_REPLICAS = {"replica_heartbeat_seconds": 0.5, "replica_expire_seconds": 3}


def start_api(make_api, **settings: object) -> TestClient:
    """An API with the in-memory view, on the wall clock's moment, that may send to the loopback receiver."""
    return make_api(
        now=datetime.now(UTC), quota_live_usage=True, webhook_allow_private_targets=True, **FAST_REPLICAS, **settings
    )


def register(api: TestClient, receiver, path: str, events: list[str]) -> str:
    created = api.post(HOOKS, json={"url": receiver.url(path), "events": events}, headers=ADMIN)
    assert created.status_code == 201, created.text
    receiver.set_secret(path, created.json()["secret"])
    return str(created.json()["id"])


def use(clickhouse: Client, user: str, amount: float, feature: str = "document_export") -> None:
    record_usage(clickhouse, [(user, feature, datetime.now(UTC), amount)])


def accepted(receiver, path: str) -> list[dict]:
    """The verified deliveries the receiver answered 2xx, in arrival order."""
    return [item for item in receiver.received(path) if item["verified"] and 200 <= item["answered"] < 300]


def log_of(api: TestClient, endpoint_id: str) -> list[dict]:
    answer = api.get(f"{HOOKS}/{endpoint_id}/deliveries", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["deliveries"])


def test_each_crossing_arrives_once_signed_with_an_id_to_dedupe_on(make_api, clickhouse, webhook_receiver):
    api = start_api(make_api)
    endpoint = register(api, webhook_receiver, "/hooks/all", ["quota.threshold_reached", "quota.exceeded"])
    use(clickhouse, "carol", 5)
    use(clickhouse, "carol", 3)  # 8 of the free plan's 10 exports: 80 %
    first = webhook_receiver.wait_for("/hooks/all", 1, timeout=20)
    use(clickhouse, "carol", 1)
    use(clickhouse, "carol", 2)  # 11: exceeded
    webhook_receiver.wait_for("/hooks/all", 2, timeout=20)
    time.sleep(2)  # what else would come, comes
    got = accepted(webhook_receiver, "/hooks/all")
    assert [(item["body"]["type"], item["body"]["threshold_percent"]) for item in got] == [
        ("quota.threshold_reached", 80),
        ("quota.exceeded", 100),
    ]
    assert all(item["verified"] for item in webhook_receiver.received("/hooks/all"))
    assert first[0]["body"]["used"] == 8 and got[1]["body"]["used"] == 11 and got[1]["body"]["limit"] == 10
    ids = [item["webhook_id"] for item in got]
    assert len(set(ids)) == 2 and all(item.startswith("evt_") for item in ids)
    wait_for(lambda: _settled(log_of(api, endpoint)), timeout=10)
    log = log_of(api, endpoint)
    assert sorted(delivery["event_id"] for delivery in log) == sorted(ids)
    assert all(delivery["state"] == "delivered" and delivery["attempts"] == 1 for delivery in log)


def test_a_receiver_that_is_down_or_answers_5xx_gets_the_event_later_and_a_4xx_is_not_retried(
    make_api, clickhouse, webhook_receiver
):
    api = start_api(make_api)
    flaky = register(api, webhook_receiver, "/hooks/flaky", ["quota.threshold_reached"])
    strict = register(api, webhook_receiver, "/hooks/strict", ["quota.threshold_reached"])
    webhook_receiver.respond("/hooks/flaky", 503, times=1)
    webhook_receiver.respond("/hooks/strict", 400)
    use(clickhouse, "carol", 8)
    webhook_receiver.wait_for("/hooks/strict", 1, timeout=20)
    # The first attempt got 503; the next one, 5 s later, is answered 2xx.
    wait_for(lambda: accepted(webhook_receiver, "/hooks/flaky"), timeout=30)
    # The receiver records its answer before the sender has read it and written the attempt down.
    wait_for(lambda: _settled(log_of(api, flaky)), timeout=10)
    flaky_log = log_of(api, flaky)
    assert [(d["state"], d["attempts"]) for d in flaky_log] == [("delivered", 2)]
    assert [attempt["status_code"] for attempt in flaky_log[0]["history"]] == [503, 204]
    time.sleep(1)
    strict_log = log_of(api, strict)
    assert [(d["state"], d["attempts"], d["last_status"]) for d in strict_log] == [("failed", 1, 400)]
    assert "not retried" in strict_log[0]["last_error"]
    assert len(webhook_receiver.received("/hooks/strict")) == 1

    # Down: no connection at all. The event waits, and arrives once the receiver is back.
    webhook_receiver.stop()
    use(clickhouse, "bob", 8)
    wait_for(lambda: any(d["attempts"] >= 1 and d["state"] == "pending" for d in log_of(api, flaky)), timeout=20)
    pending = next(d for d in log_of(api, flaky) if d["state"] == "pending")
    assert pending["history"][0]["status_code"] is None and "could not connect" in pending["last_error"]
    webhook_receiver.start()
    webhook_receiver.set_secret("/hooks/flaky", _secret_of(api, flaky))
    arrived = wait_for(
        lambda: [i for i in accepted(webhook_receiver, "/hooks/flaky") if i["body"]["user_id"] == "bob"], 30
    )
    assert arrived and arrived[0]["webhook_id"] == pending["event_id"]


def test_pending_events_are_sent_after_the_api_restarts(make_api, clickhouse, webhook_receiver):
    first = start_api(make_api)
    endpoint = register(first, webhook_receiver, "/hooks/a", ["quota.threshold_reached", "quota.exceeded"])
    webhook_receiver.respond("/hooks/a", 503)
    use(clickhouse, "carol", 10)
    webhook_receiver.wait_for("/hooks/a", 2, timeout=20)
    first.__exit__(None, None, None)
    webhook_receiver.respond("/hooks/a", 204)

    second = start_api(make_api)
    wait_for(lambda: len(accepted(webhook_receiver, "/hooks/a")) >= 2, timeout=40)
    time.sleep(2)
    got = accepted(webhook_receiver, "/hooks/a")
    refused = {item["webhook_id"] for item in webhook_receiver.received("/hooks/a") if item["answered"] == 503}
    assert sorted(item["body"]["type"] for item in got) == ["quota.exceeded", "quota.threshold_reached"]
    # The same ids as the attempts before the restart, each accepted once: the restarted API found them recorded.
    assert {item["webhook_id"] for item in got} == refused and len(got) == 2
    wait_for(lambda: _settled(log_of(second, endpoint)), timeout=10)
    assert all(d["state"] == "delivered" for d in log_of(second, endpoint))


def test_two_replicas_send_each_event_once_and_one_takes_over_when_the_other_stops(
    make_api, clickhouse, webhook_receiver
):
    one, two = start_api(make_api), start_api(make_api)
    register(one, webhook_receiver, "/hooks/pair", ["quota.threshold_reached", "quota.exceeded"])
    wait_for(lambda: _alive(one) == _alive(two) == 2, timeout=20)
    users = [f"user-{n}" for n in range(12)]
    for user in users:
        use(clickhouse, user, 10)
    wait_for(lambda: len(accepted(webhook_receiver, "/hooks/pair")) >= 2 * len(users), timeout=40)
    time.sleep(2)
    counts = Counter(item["webhook_id"] for item in accepted(webhook_receiver, "/hooks/pair"))
    assert len(counts) == 2 * len(users) and set(counts.values()) == {1}
    senders = clickhouse.query(f"SELECT uniqExact(ReplicaId) FROM {tables.WEBHOOK_ATTEMPTS}").result_rows[0][0]
    assert senders == 2

    # The receiver is down while more users cross; then one replica stops for good.
    webhook_receiver.stop()
    late = [f"late-{n}" for n in range(6)]
    for user in late:
        use(clickhouse, user, 10)
    wait_for(lambda: _pending(clickhouse) >= 2 * len(late), timeout=30)
    one.__exit__(None, None, None)
    webhook_receiver.start()
    webhook_receiver.set_secret("/hooks/pair", _secret_of(two, None))
    wait_for(lambda: _pending(clickhouse) == 0, timeout=45)
    arrived = {item["body"]["user_id"] for item in accepted(webhook_receiver, "/hooks/pair")}
    assert set(late) <= arrived


def _settled(log: list[dict]) -> bool:
    """Whether no delivery in the log is still pending."""
    return all(d["state"] != "pending" for d in log)


def _alive(api: TestClient) -> int:
    rank = api.app.state.services.webhooks.membership.rank()  # type: ignore[attr-defined]
    return 0 if rank is None else int(rank[1])


def _pending(clickhouse: Client) -> int:
    sql = f"SELECT count() FROM {tables.WEBHOOK_DELIVERIES} FINAL WHERE State = 'pending'"
    return int(clickhouse.query(sql).result_rows[0][0])


def _secret_of(api: TestClient, endpoint_id: str | None) -> str:
    """An endpoint's secret, as the API holds it (the receiver's restart forgot it)."""
    store = api.app.state.services.webhooks.endpoints  # type: ignore[attr-defined]
    held = [store.held(endpoint_id)] if endpoint_id else [store.held(e) for e, _ in store.subscriptions()]
    return str(next(endpoint for endpoint in held if endpoint is not None).secret)
