"""Requests read a plan catalog snapshot that a background revalidation keeps current."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from usagemeter_api import load_plans
from usagemeter_api.domain.plan_store import PlanStore
from usagemeter_api.domain.plans import Plan, PlanCatalog
from usagemeter_clickhouse import Client, connect, tables

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


def test_seeded_plans_with_a_dimension_off_the_allow_list_are_warned_about_at_startup(
    clickhouse: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="usagemeter_api.domain.plan_store"):
        catalog = PlanStore(load_plans(), ttl_seconds=0).catalog(clickhouse)
    # Not fatal: the feature is still in the plans, metered; only its dimension limits see no usage.
    assert catalog.plans["pro"].features["ai_tokens"].dimension == "model"
    warned = sorted(record.getMessage() for record in caplog.records)
    assert warned == [
        f"plan {plan} meters ai_tokens by dimension 'model', which is not on the allow-list"
        " (USAGEMETER_DIMENSION_ATTRIBUTES: empty): its dimension limits see no usage"
        for plan in ("enterprise", "pro")
    ]
    caplog.clear()
    clickhouse.insert(tables.USAGE_DIMENSIONS, [["model", True, 1]], ["Attribute", "Active", "Version"])
    with caplog.at_level(logging.WARNING, logger="usagemeter_api.domain.plan_store"):
        PlanStore(load_plans(), ttl_seconds=0).catalog(clickhouse)
    assert caplog.records == []


def test_the_held_catalog_answers_through_an_outage_with_one_warning(
    started: PlanStore, clickhouse: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="usagemeter_api.domain.plan_store"):
        clickhouse.command(f"RENAME TABLE {tables.PLANS} TO plans_away")
        try:
            deadline = time.monotonic() + _DEADLINE_SECONDS
            while "revalidating the plan catalog failed" not in caplog.text:
                assert time.monotonic() < deadline, "no warning"
                time.sleep(0.02)
            time.sleep(0.5)  # several more failed revalidations
            held = started.snapshot()
            assert held is not None
            assert held.default_plan == "free"
        finally:
            clickhouse.command(f"RENAME TABLE plans_away TO {tables.PLANS}")
        _wait_for(started.snapshot, lambda _: "works again" in caplog.text, "the recovery")
    levels = [record.levelname for record in caplog.records if "plan catalog" in record.getMessage()]
    assert levels[0] == "WARNING"
    assert levels.count("WARNING") == 1
