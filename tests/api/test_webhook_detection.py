"""Threshold detection against the real engine, pass by pass at chosen moments: once per period, once per rolling
window length, quota.reset when a crossed period ends, and nothing twice across detectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.api_support import SECRET, bearer, record_usage
from usagemeter_api import ApiSettings, create_app
from usagemeter_api.domain.webhooks.service import Webhooks
from usagemeter_clickhouse import Client, connect, tables

ADMIN = bearer("root", admin=True)
EVERY_EVENT = ["quota.threshold_reached", "quota.exceeded", "quota.reset", "grant.exhausted"]


class Moment:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def start(chdb_url: str, database: str, clickhouse: Client) -> Iterator:
    """Start an app whose detector runs only when the test calls it, at the test's moment; register an endpoint."""
    started: list[TestClient] = []

    def build(clock: Moment, plans_file=None) -> tuple[TestClient, Webhooks]:
        settings = ApiSettings(
            jwt_secret=SecretStr(SECRET),
            plans_file=plans_file,
            quota_live_usage=False,
            webhook_allow_private_targets=True,
        )
        app = create_app(settings, lambda: connect(chdb_url, database), clock=clock)
        api = TestClient(app, raise_server_exceptions=False)
        api.__enter__()
        started.append(api)
        webhooks = app.state.services.webhooks
        # The test runs each pass itself, at its moments.
        webhooks.detector.close()
        if not webhooks.endpoints.subscriptions():
            # Port 9 refuses connections at once: deliveries fail and wait for their retry, out of the way.
            body = {"url": "http://127.0.0.1:9/hooks", "events": EVERY_EVENT}
            assert api.post("/api/v1/admin/webhooks", json=body, headers=ADMIN).status_code == 201
        return api, webhooks

    yield build
    for api in started:
        api.__exit__(None, None, None)


def detect(webhooks: Webhooks, clickhouse: Client) -> list[tuple[str, str, float | None]]:
    events = asyncio.run(webhooks.detector.detect(clickhouse))
    return sorted((event.type, event.user_id, event.body["threshold_percent"]) for event in events)  # type: ignore[misc]


def recorded(clickhouse: Client) -> list[tuple[str, str, dict]]:
    rows = clickhouse.query(f"SELECT EventId, Type, Payload FROM {tables.WEBHOOK_EVENTS} FINAL ORDER BY OccurredAt")
    return [(event, kind, json.loads(body)) for event, kind, body in rows.result_rows]


def test_a_calendar_threshold_is_announced_once_per_period_however_usage_moves(start, clickhouse):
    clock = Moment(datetime.now(UTC).replace(second=0, microsecond=0))
    api, webhooks = start(clock)
    record_usage(clickhouse, [("carol", "document_export", clock.at, 7)])
    assert detect(webhooks, clickhouse) == []
    record_usage(clickhouse, [("carol", "document_export", clock.at, 1)])
    assert detect(webhooks, clickhouse) == [("quota.threshold_reached", "carol", 80)]
    # A correction takes usage below 80 % and more use brings it back: still the same period, nothing new.
    correction = {"user_id": "carol", "feature_key": "document_export", "amount": -2, "reason": "refund"}
    assert api.post("/api/v1/admin/corrections", json=correction, headers=ADMIN).status_code == 201
    assert detect(webhooks, clickhouse) == []
    record_usage(clickhouse, [("carol", "document_export", clock.at, 2)])
    assert detect(webhooks, clickhouse) == []
    record_usage(clickhouse, [("carol", "document_export", clock.at, 3)])
    assert detect(webhooks, clickhouse) == [("quota.exceeded", "carol", 100)]
    assert sorted(kind for _, kind, _ in recorded(clickhouse)) == ["quota.exceeded", "quota.threshold_reached"]


def test_a_second_detector_on_the_same_outbox_records_nothing_again(start, clickhouse):
    clock = Moment(datetime.now(UTC).replace(second=0, microsecond=0))
    _, first = start(clock)
    record_usage(clickhouse, [("carol", "document_export", clock.at, 10), ("dave", "chat_messages", clock.at, 400)])
    assert detect(first, clickhouse) == [
        ("quota.exceeded", "carol", 100),
        ("quota.threshold_reached", "carol", 80),
        ("quota.threshold_reached", "dave", 80),
    ]
    # Another replica, or this one restarted: the ids are the same and already recorded.
    _, second = start(clock)
    assert detect(second, clickhouse) == []
    assert len(recorded(clickhouse)) == 3


def test_quota_reset_follows_the_end_of_a_crossed_period_once(start, clickhouse):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    last_month_end = now.replace(day=1, hour=0, minute=0) - timedelta(minutes=5)
    clock = Moment(last_month_end)
    _, webhooks = start(clock)
    record_usage(
        clickhouse, [("carol", "document_export", last_month_end, 9), ("bob", "document_export", last_month_end, 1)]
    )
    assert detect(webhooks, clickhouse) == [("quota.threshold_reached", "carol", 80)]
    clock.at = now
    record_usage(clickhouse, [("carol", "document_export", now, 2)])
    assert detect(webhooks, clickhouse) == [("quota.reset", "carol", None)]
    reset = recorded(clickhouse)[-1][2]
    assert reset["used"] == 2 and reset["period_start"] == now.replace(day=1, hour=0, minute=0).isoformat().replace(
        "+00:00", "Z"
    )
    clock.at = now + timedelta(seconds=30)
    webhooks.detector._last_resets = None  # the next pass looks for ended periods again
    assert detect(webhooks, clickhouse) == []


def test_a_rolling_threshold_is_announced_at_most_once_per_window_length(start, clickhouse, plans_file):
    plans = plans_file(
        'default_plan = "burst"\n[plans.burst]\nname = "Burst"\n'
        '[plans.burst.features.ai_tokens]\nunit = "tokens"\n'
        'limits = [{ window = "1h", limit = 100 }]\nthresholds = [{ percent = 50 }]\n'
    )
    start_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    clock = Moment(start_at)
    _, webhooks = start(clock, plans)
    record_usage(clickhouse, [("erin", "ai_tokens", start_at - timedelta(minutes=30), 60)])
    assert detect(webhooks, clickhouse) == [("quota.threshold_reached", "erin", 50)]
    # Usage leaves the window and comes back within the hour: no second announcement.
    clock.at = start_at + timedelta(minutes=31)
    assert detect(webhooks, clickhouse) == []
    record_usage(clickhouse, [("erin", "ai_tokens", clock.at, 55)])
    assert detect(webhooks, clickhouse) == []
    # A detector that never saw the first (a restart) finds it in the outbox.
    _, other = start(clock, plans)
    assert detect(other, clickhouse) == []
    # An hour after the announcement the threshold may be announced again.
    clock.at = start_at + timedelta(minutes=61)
    record_usage(clickhouse, [("erin", "ai_tokens", clock.at, 1)])
    assert detect(webhooks, clickhouse) == [("quota.threshold_reached", "erin", 50)]


def test_grants_raise_the_levels_and_their_exhaustion_is_announced(start, clickhouse):
    clock = Moment(datetime.now(UTC).replace(second=0, microsecond=0))
    api, webhooks = start(clock)
    grant = {"user_id": "carol", "feature_key": "document_export", "amount": 10, "reason": "support"}
    assert api.post("/api/v1/admin/grants", json=grant, headers=ADMIN).status_code == 201
    record_usage(clickhouse, [("carol", "document_export", clock.at, 15)])
    assert detect(webhooks, clickhouse) == []
    record_usage(clickhouse, [("carol", "document_export", clock.at, 5)])
    assert detect(webhooks, clickhouse) == [
        ("grant.exhausted", "carol", 100.0),
        ("quota.exceeded", "carol", 100),
        ("quota.threshold_reached", "carol", 80),
    ]
    body = next(body for _, kind, body in recorded(clickhouse) if kind == "grant.exhausted")
    assert (body["used"], body["limit"], body["granted"]) == (20, 10, 10)
