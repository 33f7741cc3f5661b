"""Quota reads keep answering from what the API holds while its ClickHouse server is away, for a bounded time."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.api_support import record_usage
from tests.clickhouse_server import ClickHouseServer
from tests.conftest import ServerFactory
from tests.server.processes import JWT_SECRET, Api, run_migrate, server_env, start_api, start_collector, token
from tests.server.senders import FEATURE, send_usage
from tests.web.web_support import wait_until
from usagemeter_api import ApiSettings, create_app
from usagemeter_api.domain.periods import period_window
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.quantity import MICROS_PER_UNIT
from usagemeter_clickhouse import connect, migrate

_DEADLINE_SECONDS = 90
#: Small enough to wait out in a test, large enough for the stale reads before it on a busy machine.
_MAX_STALENESS_SECONDS = 10

Get = Callable[..., httpx.Response]


def _headers(user: str, *, admin: bool = False) -> dict[str, str]:
    return {"authorization": f"Bearer {token(user, admin=admin)}"}


def _wait_for(read: Callable[[], httpx.Response], condition: Callable[[httpx.Response], bool], what: str) -> Any:
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while True:
        response = read()
        if condition(response):
            return response
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last answer {response.status_code}: {response.text}")
        time.sleep(0.1)


def _reads(get: Get, user: str) -> dict[str, httpx.Response]:
    """The three quota reads of ``user``: list, one feature, and the check."""
    headers = _headers(user)
    return {
        "list": get("/quotas", headers=headers),
        "get": get(f"/quotas/{FEATURE}", headers=headers),
        "check": get(f"/quotas/{FEATURE}/check", headers=headers),
    }


def _used(name: str, body: dict[str, Any]) -> float:
    if name == "list":
        return {item["feature_key"]: item["used"] for item in body["quotas"]}[FEATURE]
    return float(body["used"])


def _answers(get: Get, user: str) -> dict[str, dict[str, Any]]:
    """The three reads of ``user``, which must all be 200."""
    responses = _reads(get, user)
    for name, response in responses.items():
        assert response.status_code == 200, f"{name}: {response.text}"
    return {name: response.json() for name, response in responses.items()}


def _api_get(api: Api, timeout: float = 30) -> Get:
    return lambda path, **kwargs: httpx.get(f"{api.base}{path}", timeout=timeout, **kwargs)


def _as_of(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["as_of"])


def test_quota_reads_answer_stale_through_an_outage_then_refuse_past_the_bound_then_recover(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), database, quota_max_staleness_seconds=str(_MAX_STALENESS_SECONDS))
    run_migrate(env)
    collector = start_collector(env, tmp_path / "collector")
    api = start_api(env, tmp_path)
    get = _api_get(api)
    try:
        send_usage(collector.grpc_endpoint, {"ana": 3, "ben": 5})
        collector.wait_drained()
        api.wait_for_output("live usage totals loaded")
        # The view loaded at start, perhaps before the usage was stored: its next refresh counts it.
        _wait_for(
            lambda: get(f"/quotas/{FEATURE}/check", headers=_headers("ana")),
            lambda response: response.json().get("used") == 3,
            "the view to count the usage sent",
        )
        fresh = _answers(get, "ana")
        assert {name: (_used(name, body), body["stale"]) for name, body in fresh.items()} == {
            name: (3, False) for name in fresh
        }

        server.stop()
        stale = _wait_for(lambda: get(f"/quotas/{FEATURE}/check", headers=_headers("ana")), _is_stale, "a stale check")
        as_of = _as_of(stale.json())
        assert as_of >= _as_of(fresh["check"])
        send_usage(collector.grpc_endpoint, {"ana": 2})  # spooled: ClickHouse is away
        for _ in range(2):
            answers = _answers(get, "ana")
            for name, body in answers.items():
                assert (_used(name, body), body["stale"], _as_of(body)) == (3, True, as_of), name
            assert answers["check"]["allowed"] is True
        # Each user still sees only their own figures; one without usage gets the default plan's zero.
        assert _answers(get, "ben")["get"]["used"] == 5
        assert _answers(get, "zoe")["list"]["plan"]["id"] == "free"
        assert _answers(get, "zoe")["get"]["used"] == 0
        assert get("/quotas", params={"user_id": "ben"}, headers=_headers("ana")).status_code == 403

        refused = _wait_for(
            lambda: get(f"/quotas/{FEATURE}/check", headers=_headers("ana")),
            lambda response: response.status_code == 503,
            "the bound to pass",
        )
        assert "USAGEMETER_QUOTA_MAX_STALENESS_SECONDS" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "5"
        for name, response in _reads(get, "ana").items():
            assert response.status_code == 503, f"{name}: {response.text}"
            assert "ClickHouse cannot be read" in response.json()["detail"]

        server.start()
        collector.wait_drained()
        recovered = _wait_for(
            lambda: get(f"/quotas/{FEATURE}", headers=_headers("ana")),
            lambda response: response.status_code == 200 and response.json()["used"] == 5,
            "fresh figures with the usage sent during the outage",
        )
        assert recovered.json()["stale"] is False
        for name, body in _answers(get, "ana").items():
            assert (_used(name, body), body["stale"]) == (5, False), name
            assert _as_of(body) > as_of
    finally:
        assert collector.stop() == 0, collector.output()
        assert api.stop() == 0, api.output()


def _is_stale(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return bool(response.json()["stale"])


@pytest.fixture
def outage_server(server_factory: ServerFactory, database: str) -> ClickHouseServer:
    """A migrated database on a server of the test's own, which it may stop."""
    server = server_factory.server()
    client = connect(server.url(), database, create_database=True)
    migrate(client)
    client.close()
    return server


@pytest.fixture
def in_process_api(outage_server: ClickHouseServer, database: str) -> Iterator[Callable[..., TestClient]]:
    """Build an app in this process on ``outage_server``; keyword arguments become ApiSettings fields."""
    started: list[TestClient] = []

    def build(**settings: Any) -> TestClient:
        app = create_app(
            ApiSettings(jwt_secret=SecretStr(JWT_SECRET), **settings), lambda: connect(outage_server.url(), database)
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        started.append(client)
        return client

    yield build
    for client in started:
        client.__exit__(None, None, None)


def _record(server: ClickHouseServer, database: str, uses: dict[str, int]) -> None:
    client = connect(server.url(), database)
    try:
        record_usage(client, [(user, FEATURE, datetime.now(UTC), n) for user, n in uses.items()])
    finally:
        client.close()


def test_without_the_live_view_a_user_read_before_answers_stale_with_held_plans_and_one_never_read_gets_503(
    outage_server: ClickHouseServer, database: str, in_process_api: Callable[..., TestClient]
) -> None:
    _record(outage_server, database, {"ana": 4, "ben": 6})
    api = in_process_api(quota_live_usage=False, quota_cache_seconds=0)
    get = lambda path, **kwargs: api.get(f"/api/v1{path}", **kwargs)  # noqa: E731
    fresh = _answers(get, "ana")
    assert {name: (_used(name, body), body["stale"]) for name, body in fresh.items()} == {
        name: (4, False) for name in fresh
    }
    outage_server.stop()
    for name, body in _answers(get, "ana").items():
        assert (_used(name, body), body["stale"]) == (4, True), name
        # The figures of the last read of each feature before the outage.
        assert _as_of(body) in {_as_of(before) for before in fresh.values()}
    # A plan change cannot be made while ClickHouse is away, and trying keeps the held plans.
    assignment = api.put("/api/v1/admin/users/ana/plan", json={"plan_id": "pro"}, headers=_headers("root", admin=True))
    assert assignment.status_code == 503, assignment.text
    assert _answers(get, "ana")["list"]["plan"]["id"] == "free"
    # Never read before the outage: the API holds nothing for ben, so it does not guess.
    for name, response in _reads(get, "ben").items():
        assert response.status_code == 503, f"{name}: {response.text}"
        assert response.headers["retry-after"] == "5"
        assert "ClickHouse" in response.json()["detail"]


def test_a_zero_bound_never_answers_stale(
    outage_server: ClickHouseServer, database: str, in_process_api: Callable[..., TestClient]
) -> None:
    _record(outage_server, database, {"ana": 2})
    api = in_process_api(quota_max_staleness_seconds=0)
    live = api.app.state.services.live_usage
    check = lambda: api.get(f"/api/v1/quotas/{FEATURE}/check", headers=_headers("ana"))  # noqa: E731
    _wait_for(check, lambda response: live.freshness is not None, "the live view to load")
    assert check().json()["stale"] is False
    outage_server.stop()
    seen: list[httpx.Response] = []

    def record(response: httpx.Response) -> bool:
        seen.append(response)
        return response.status_code == 503

    _wait_for(check, record, "the check to refuse")
    assert [response.json()["stale"] for response in seen if response.status_code == 200] == [False] * (len(seen) - 1)
    assert "USAGEMETER_QUOTA_MAX_STALENESS_SECONDS (0 s)" in seen[-1].json()["detail"]
    outage_server.start()
    answer = _wait_for(check, lambda response: response.status_code == 200, "the check to answer again")
    assert answer.json()["stale"] is False
    assert answer.json()["used"] == 2


def test_an_api_that_served_no_quota_read_answers_stale_from_the_view_it_loaded_at_start(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), database)
    run_migrate(env)
    _record(server, database, {"ana": 7, "ben": 2})
    api = start_api(env, tmp_path)
    get = _api_get(api)
    try:
        api.wait_for_output("live usage totals loaded")
        # Not a quota read: it only makes sure the plans the store reads at start are held too.
        assert get("/admin/plans", headers=_headers("root", admin=True)).status_code == 200
        server.stop()
        stale = _wait_for(lambda: get(f"/quotas/{FEATURE}", headers=_headers("ana")), _is_stale, "a stale answer")
        assert stale.json()["used"] == 7
        for name, body in _answers(get, "ana").items():
            assert (_used(name, body), body["stale"]) == (7, True), name
        assert _answers(get, "ben")["get"]["used"] == 2
        assert _answers(get, "zoe")["get"]["used"] == 0  # no usage this period: the view holds its zero
    finally:
        assert api.stop() == 0, api.output()


def test_an_api_started_while_clickhouse_is_away_starts_and_loads_the_view_once_it_answers(
    outage_server: ClickHouseServer, database: str, in_process_api: Callable[..., TestClient]
) -> None:
    _record(outage_server, database, {"ana": 3})
    outage_server.stop()
    api = in_process_api()
    live = api.app.state.services.live_usage
    assert api.get("/").status_code == 200  # started: the page is served without ClickHouse
    refused = api.get(f"/api/v1/quotas/{FEATURE}", headers=_headers("ana"))
    assert refused.status_code == 503, refused.text  # nothing held yet: no guess
    assert not live.ready
    outage_server.start()
    wait_until(lambda: live.ready, "the view to load once ClickHouse answers", timeout=_DEADLINE_SECONDS)
    assert live.used("ana", [Slice.total(FEATURE)], period_window("month", datetime.now(UTC))) == [3 * MICROS_PER_UNIT]
    answer = _wait_for(
        lambda: api.get(f"/api/v1/quotas/{FEATURE}", headers=_headers("ana")),
        lambda response: response.status_code == 200,
        "the quota to answer",
    )
    assert (answer.json()["used"], answer.json()["stale"]) == (3, False)


def test_a_hung_server_holds_up_no_quota_read_the_view_answers_stale_until_it_resumes(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), database)
    run_migrate(env)
    _record(server, database, {"ana": 6})
    api = start_api(env, tmp_path)
    # Each read gives up long before the server's clients would (minutes): a hang fails the test here.
    get = _api_get(api, timeout=15)
    assert server.process is not None
    try:
        api.wait_for_output("live usage totals loaded")
        assert _answers(get, "ana")["check"]["used"] == 6
        server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
        stale = _wait_for(lambda: get(f"/quotas/{FEATURE}/check", headers=_headers("ana")), _is_stale, "a stale check")
        for _ in range(3):
            for name, body in _answers(get, "ana").items():
                assert (_used(name, body), body["stale"], _as_of(body)) == (6, True, _as_of(stale.json())), name
        server.process.send_signal(signal.SIGCONT)
        fresh = _wait_for(
            lambda: get(f"/quotas/{FEATURE}", headers=_headers("ana")),
            lambda response: response.status_code == 200 and response.json()["stale"] is False,
            "fresh figures once the server resumes",
        )
        assert fresh.json()["used"] == 6
    finally:
        server.process.send_signal(signal.SIGCONT)
        assert api.stop() == 0, api.output()
