"""When the in-memory view is stale, quota reads ask ClickHouse for the user's own figures, skipping reads that just
failed; past the staleness bound a per-user read's 503 names the setting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tests.api.api_support import NOW, bearer, record_usage
from tests.api.conftest import AppFactory
from tests.conftest import free_port
from tests.web.web_support import wait_until
from usagemeter_api.domain.usage import cache as usage_cache
from usagemeter_api.domain.usage.cache import ReadCircuit
from usagemeter_clickhouse import Client, connect, tables

FEATURE = "ai_content_generation"
PATHS = {"list": "/api/v1/quotas", "get": f"/api/v1/quotas/{FEATURE}", "check": f"/api/v1/quotas/{FEATURE}/check"}


@contextmanager
def table_away(clickhouse: Client, table: str) -> Iterator[None]:
    """``table`` renamed for the block, so every query that reads it fails as ClickHouse's answer."""
    clickhouse.command(f"RENAME TABLE {table} TO {table}_away")
    try:
        yield
    finally:
        clickhouse.command(f"RENAME TABLE {table}_away TO {table}")


def used_of(name: str, body: dict[str, Any]) -> float:
    if name == "list":
        return {item["feature_key"]: item["used"] for item in body["quotas"]}[FEATURE]
    return float(body["used"])


def server_error(clickhouse: Client) -> DatabaseError:
    """The error of a query ClickHouse answered with an exception."""
    with pytest.raises(DatabaseError) as raised:
        clickhouse.query("SELECT throwIf(1, 'refused')")
    assert not isinstance(raised.value, OperationalError)
    return raised.value


def unreachable_error() -> OperationalError:
    """The error of a server that cannot be reached."""
    with pytest.raises(OperationalError) as raised:
        connect(f"http://127.0.0.1:{free_port()}", "default")
    return raised.value


def test_a_stale_view_gives_way_to_a_fresh_read_of_the_same_figures(make_api: AppFactory, clickhouse: Client) -> None:
    record_usage(clickhouse, [("ana", FEATURE, NOW, 3)])
    api = make_api(quota_live_usage=True, quota_live_refresh_seconds=0.05)
    live = api.app.state.services.live_usage
    wait_until(lambda: live.freshness is not None, "the view to load")
    assert api.get(PATHS["get"], headers=bearer("ana")).json()["used"] == 3
    from_view = {name: api.get(path, headers=bearer("ana")).json() for name, path in PATHS.items()}
    assert {name: (used_of(name, body), body["stale"]) for name, body in from_view.items()} == {
        name: (3, False) for name in PATHS
    }
    # The view's refresh reads the ingest rollup; a user's own read does not.
    with table_away(clickhouse, tables.USAGE_INGEST):
        wait_until(lambda: live.freshness.stale, "the view's refresh to fail")
        view_as_of = live.freshness.as_of
        for user, expected in (("ana", 3), ("zoe", 0)):
            for name, path in PATHS.items():
                answer = api.get(path, headers=bearer(user))
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert (used_of(name, body), body["stale"]) == (expected, False), (user, name)
                assert datetime.fromisoformat(body["as_of"]) > view_as_of
        assert live.freshness.stale, "the view stayed behind throughout"


def test_when_the_read_fails_too_the_view_answers_stale_and_that_user_is_not_read_again_at_once(
    make_api: AppFactory, clickhouse: Client
) -> None:
    record_usage(clickhouse, [("ana", FEATURE, NOW, 4)])
    api = make_api(quota_live_usage=True, quota_live_refresh_seconds=0.05)
    live = api.app.state.services.live_usage
    wait_until(lambda: live.freshness is not None, "the view to load")
    assert api.get(PATHS["get"], headers=bearer("ana")).json()["used"] == 4
    with table_away(clickhouse, tables.USAGE_INGEST), table_away(clickhouse, tables.USAGE_DAY):
        wait_until(lambda: live.freshness.stale, "the view's refresh to fail")
        body = api.get(PATHS["check"], headers=bearer("ana")).json()
        assert (body["used"], body["stale"]) == (4, True)
        assert datetime.fromisoformat(body["as_of"]) == live.freshness.as_of
        assert not api.app.state.services.usage_cache.circuit.allows("ana")
        # the server answered: only ana's read is skipped
        assert api.app.state.services.usage_cache.circuit.allows("ben")


def test_past_the_bound_a_per_user_read_refuses_naming_the_staleness_setting(
    make_api: AppFactory, clickhouse: Client
) -> None:
    record_usage(clickhouse, [("ana", FEATURE, NOW, 4)])
    api = make_api(quota_live_usage=False, quota_cache_seconds=0, quota_max_staleness_seconds=1)
    for name, path in PATHS.items():
        assert used_of(name, api.get(path, headers=bearer("ana")).json()) == 4
    with table_away(clickhouse, tables.USAGE_DAY):
        wait_until(lambda: api.get(PATHS["check"], headers=bearer("ana")).status_code == 503, "the bound to pass")
        for name, path in PATHS.items():
            refused = api.get(path, headers=bearer("ana"))
            assert refused.status_code == 503, (name, refused.text)
            assert "older than USAGEMETER_QUOTA_MAX_STALENESS_SECONDS (1 s)" in refused.json()["detail"], name
        # Never read: nothing expired, the query simply failed.
        never = api.get(PATHS["get"], headers=bearer("ben"))
        assert never.status_code == 503
        assert "USAGEMETER_QUOTA_MAX_STALENESS_SECONDS" not in never.json()["detail"]


def test_a_refused_read_skips_that_user_and_an_unreachable_server_skips_every_read(clickhouse: Client) -> None:
    circuit = ReadCircuit(skip_seconds=600)
    circuit.failed("ana", server_error(clickhouse))
    assert not circuit.allows("ana") and circuit.allows("ben")
    circuit.failed("ben", unreachable_error())
    assert not circuit.allows("ben") and not circuit.allows("carl")
    for exc in (TimeoutError("no answer"), OperationalError("Network Error")):
        shortly = ReadCircuit(skip_seconds=0)
        shortly.failed("ana", exc)
        assert shortly.allows("ana")  # the skip is over at once
        brief = ReadCircuit(skip_seconds=600)
        brief.failed("ana", exc)
        assert not brief.allows("zoe")


def test_a_read_that_answers_clears_its_users_skip(clickhouse: Client) -> None:
    circuit = ReadCircuit(skip_seconds=600)
    circuit.failed("ana", server_error(clickhouse))
    circuit.succeeded("ana")
    assert circuit.allows("ana")


def test_skipped_users_stay_bounded_and_past_the_bound_every_read_is_skipped(
    clickhouse: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_cache, "_SKIPPED_USERS_MAX", 8)
    circuit = ReadCircuit(skip_seconds=600)
    refused = server_error(clickhouse)
    for user in range(8):
        circuit.failed(f"user-{user}", refused)
    assert circuit.allows("someone-else")
    circuit.failed("user-8", refused)
    assert len(circuit._users) == 8
    assert not circuit.allows("someone-else")


def test_at_most_a_few_reads_wait_on_the_server_at_once() -> None:
    circuit = ReadCircuit()
    release, entered = threading.Event(), threading.Semaphore(0)

    def waiting() -> str:
        entered.release()
        release.wait(30)
        return "answered"

    threads = [threading.Thread(target=circuit.run, args=(waiting,)) for _ in range(usage_cache._RUNNING_MAX)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert entered.acquire(timeout=30)
    with pytest.raises(TimeoutError, match="still waiting"):
        circuit.run(lambda: "never run")
    release.set()
    for thread in threads:
        thread.join(30)
    assert circuit.run(lambda: "answered") == "answered"
