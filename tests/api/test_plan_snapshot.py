"""Requests read a plan catalog snapshot that a background revalidation keeps current."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from usagemeter_api import load_plans
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_clickhouse import Client, connect

_DEADLINE_SECONDS = 30
TEAM = Plan(name="Team", period="month", near_limit_ratio=0.5, enforcement="soft", limits={"chat_messages": 10})


def _wait_for(read: Callable[[], PlanCatalog | None], condition: Callable[[PlanCatalog], bool], what: str) -> None:
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while True:
        catalog = read()
        if catalog is not None and condition(catalog):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def factory(chdb_url: str, database: str, clickhouse: Client) -> Callable[[], Client]:
    return lambda: connect(chdb_url, database)


@pytest.fixture
def started(factory: Callable[[], Client]) -> Iterator[PlanStore]:
    store = PlanStore(load_plans(), ttl_seconds=0.2)
    store.start(factory)
    _wait_for(store.snapshot, lambda _: True, "the first revalidation")
    yield store
    store.close()


def test_another_process_change_reaches_the_snapshot_without_a_read(
    started: PlanStore, clickhouse: Client, factory: Callable[[], Client]
) -> None:
    other = PlanStore(load_plans(), ttl_seconds=0)
    other.create_plan(clickhouse, "team", TEAM)
    other.assign(clickhouse, "erin", "team")
    # Only the background thread revalidates here: snapshot() never queries.
    _wait_for(started.snapshot, lambda catalog: catalog.plan_for("erin")[0] == "team", "the change to arrive")


def test_a_change_in_this_process_is_in_the_snapshot_at_once(started: PlanStore, clickhouse: Client) -> None:
    started.create_plan(clickhouse, "team", TEAM)
    started.assign(clickhouse, "frank", "team")
    snapshot = started.snapshot()
    assert snapshot is not None
    assert snapshot.plan_for("frank")[0] == "team"


def test_without_a_cache_lifetime_nothing_is_served_from_a_snapshot(
    clickhouse: Client, factory: Callable[[], Client]
) -> None:
    store = PlanStore(load_plans(), ttl_seconds=0)
    store.start(factory)
    try:
        assert store.catalog(clickhouse).default_plan == "free"
        assert store.snapshot() is None
    finally:
        store.close()
