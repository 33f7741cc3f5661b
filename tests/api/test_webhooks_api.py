"""``/admin/webhooks``: endpoints registered, listed, read and deleted by admins only, with hostile URLs refused."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from tests.api.api_support import bearer
from usagemeter_api.domain.webhooks.endpoints import MAX_ENDPOINTS

ADMIN = bearer("root", admin=True)
HOOKS = "/api/v1/admin/webhooks"
PUBLIC = "https://93.184.216.34/hooks/usage"
BODY = {"url": PUBLIC, "events": ["quota.threshold_reached", "quota.exceeded"], "description": "billing"}


def test_an_endpoint_is_created_with_a_secret_shown_once_then_listed_read_and_deleted(api: TestClient):
    created = api.post(HOOKS, json=BODY, headers=ADMIN)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["url"] == PUBLIC and endpoint["events"] == BODY["events"] and endpoint["created_by"] == "root"
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    second = api.post(HOOKS, json=BODY, headers=ADMIN).json()
    assert second["secret"] != secret and second["id"] != endpoint["id"]

    listed = api.get(HOOKS, headers=ADMIN).json()["endpoints"]
    assert [item["id"] for item in listed] == [endpoint["id"], second["id"]]
    assert all("secret" not in item for item in listed)
    one = api.get(f"{HOOKS}/{endpoint['id']}", headers=ADMIN)
    assert one.status_code == 200 and "secret" not in one.json() and one.json()["description"] == "billing"

    assert api.delete(f"{HOOKS}/{endpoint['id']}", headers=ADMIN).status_code == 204
    assert api.get(f"{HOOKS}/{endpoint['id']}", headers=ADMIN).status_code == 404
    assert api.delete(f"{HOOKS}/{endpoint['id']}", headers=ADMIN).status_code == 404
    assert [item["id"] for item in api.get(HOOKS, headers=ADMIN).json()["endpoints"]] == [second["id"]]
    log = api.get(f"{HOOKS}/{second['id']}/deliveries", headers=ADMIN)
    assert log.status_code == 200 and log.json() == {"deliveries": [], "next_cursor": None}


def test_only_admins_manage_endpoints(api: TestClient):
    user = bearer("alice")
    assert api.post(HOOKS, json=BODY, headers=user).status_code == 403
    assert api.get(HOOKS, headers=user).status_code == 403
    assert api.get(HOOKS).status_code == 401
    created = api.post(HOOKS, json=BODY, headers=ADMIN).json()
    assert api.delete(f"{HOOKS}/{created['id']}", headers=user).status_code == 403
    assert api.get(f"{HOOKS}/{created['id']}/deliveries", headers=user).status_code == 403


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.216.34/x", "use http or https"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http://127.0.0.1:8000/api/v1/admin/plans", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.7/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://localhost:8123/", "local name"),
        ("http://2130706433/", "not a canonical IPv4 address"),
        ("http://93.184.216.34/a\nb", "control characters"),
        ("http:///nohost", "no host"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_a_url_the_api_must_not_reach_is_refused_with_its_reason(shared_api: TestClient, url: str, reason: str):
    # Refused before anything is written, so one app serves them all.
    answer = shared_api.post(HOOKS, json=BODY | {"url": url}, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]


def test_private_targets_are_let_in_only_when_configured(make_api):
    api = make_api(webhook_allow_private_targets=True)
    answer = api.post(HOOKS, json=BODY | {"url": "http://127.0.0.1:9/hook"}, headers=ADMIN)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    "body",
    [
        BODY | {"events": []},
        BODY | {"events": ["quota.anything"]},
        BODY | {"url": "https://93.184.216.34/" + "a" * 2100},
        BODY | {"extra": 1},
        {"events": ["quota.exceeded"]},
    ],
)
def test_a_malformed_body_is_refused(shared_api: TestClient, body: dict):
    assert shared_api.post(HOOKS, json=body, headers=ADMIN).status_code == 422


def test_ids_and_cursors_are_checked(api: TestClient):
    assert api.get(f"{HOOKS}/not-a-uuid", headers=ADMIN).status_code == 422
    assert api.get(f"{HOOKS}/3b0c2a4e-6a55-4f7e-9c1d-2f8e5b7a9c10/deliveries", headers=ADMIN).status_code == 404
    created = api.post(HOOKS, json=BODY, headers=ADMIN).json()
    bad = api.get(f"{HOOKS}/{created['id']}/deliveries", params={"cursor": "1' OR 1=1 --"}, headers=ADMIN)
    assert bad.status_code == 422 and "invalid cursor" in bad.json()["detail"]


def test_the_number_of_endpoints_is_bounded(api: TestClient):
    for _ in range(MAX_ENDPOINTS):
        assert api.post(HOOKS, json=BODY, headers=ADMIN).status_code == 201
    refused = api.post(HOOKS, json=BODY, headers=ADMIN)
    assert refused.status_code == 409 and str(MAX_ENDPOINTS) in refused.json()["detail"]


def test_webhooks_turned_off_answer_503(make_api):
    api = make_api(webhooks=False)
    answer = api.get(HOOKS, headers=ADMIN)
    assert answer.status_code == 503 and "turned off" in answer.json()["detail"]
