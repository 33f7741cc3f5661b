"""The test receiver itself: it verifies signatures, refuses forgeries, answers as told and restarts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _deliver(receiver, path: str, body: dict, secret: str = SECRET, tamper: bool = False) -> int:
    data = json.dumps(body)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "evt_test",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_test", now, data),
    }
    sent = data.replace("1", "2") if tamper else data
    return httpx.post(receiver.url(path), content=sent, headers=headers, timeout=5).status_code


def test_a_signed_delivery_verifies_and_forgeries_do_not(webhook_receiver):
    webhook_receiver.set_secret("/hooks/a", SECRET)
    assert _deliver(webhook_receiver, "/hooks/a", {"used": 1}) == 204
    assert _deliver(webhook_receiver, "/hooks/a", {"used": 1}, tamper=True) == 401
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert _deliver(webhook_receiver, "/hooks/a", {"used": 1}, secret=other) == 401
    assert [item["verified"] for item in webhook_receiver.received("/hooks/a")] == [True, False, False]
    assert webhook_receiver.received("/hooks/a")[0]["body"] == {"used": 1}


def test_it_answers_as_told_and_restarts_on_its_port(webhook_receiver):
    webhook_receiver.set_secret("/hooks/b", SECRET)
    webhook_receiver.respond("/hooks/b", 503, times=2)
    assert [_deliver(webhook_receiver, "/hooks/b", {"n": n}) for n in range(3)] == [503, 503, 204]
    webhook_receiver.stop()
    try:
        httpx.get(webhook_receiver.url("/_control/received"), timeout=1)
        raise AssertionError("the receiver still answers")
    except httpx.ConnectError:
        pass
    webhook_receiver.start()
    assert webhook_receiver.received("/hooks/b") == []
