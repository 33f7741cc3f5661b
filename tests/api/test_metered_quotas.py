"""Quota answers end to end: usage sent by the OTel SDK's OTLP exporter into the collector, then the REST answers.

Points carry their own timestamps and the API's clock is injected, so windows are tested at chosen moments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from tests.api.api_support import bearer, ns
from tests.collector.conftest import loop_thread, start_collector, wait_drained  # noqa: F401 (fixtures)
from usagemeter_clickhouse import Client, tables
from usagemeter_collector import Collector

PLANS = """
default_plan = "metered"

[plans.metered]
name = "Metered"

[plans.metered.features.ai_tokens]
unit = "tokens"
dimension = "model"
limits = [
  { window = "5h", limit = 1000 },
  { window = "7d", limit = 2000 },
  { window = "month", limit = 200, dimension_value = "gpt-4o" },
]

[plans.metered.features.credits]
unit = "credits"
limits = [{ window = "day", limit = 1 }]

[plans.metered.features.storage]
unit = "bytes"
limits = [{ window = "lifetime", limit = 1000 }]

[plans.metered.features.seats]
limits = [{ window = "cycle", limit = 10 }]
"""

#: The API's moment: two hours back (points may not be ahead of the collector's clock), mid-minute.
T = (datetime.now(UTC) - timedelta(hours=2)).replace(second=20, microsecond=0)
MINUTE = T.replace(second=0)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def send(request: pytest.FixtureRequest) -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
    """Export (user, feature, time, value[, attributes]) points through the SDK's OTLP/HTTP exporter."""
    start: Callable[..., Collector] = request.getfixturevalue("start_collector")
    # Raw retention wide enough for the lifetime case's old points.
    collector = start(raw_retention_days=60)
    exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/metrics")

    def export(points: list[tuple[Any, ...]]) -> None:
        data_points = [
            NumberDataPoint(
                attributes={"user.id": user, "feature.key": feature, **(extra[0] if extra else {})},
                start_time_unix_nano=ns(at) - 1,
                time_unix_nano=ns(at),
                value=value,
            )
            for user, feature, at, value, *extra in points
        ]
        metric = Metric(
            name=tables.USAGE_METRIC,
            description="",
            unit="",
            data=Sum(data_points, AggregationTemporality.DELTA, is_monotonic=True),
        )
        scope = ScopeMetrics(InstrumentationScope("quota-tests"), [metric], "")
        resource = ResourceMetrics(Resource.create({"service.name": "quota-tests"}), [scope], "")
        assert exporter.export(MetricsData([resource])) is MetricExportResult.SUCCESS
        wait_drained()

    yield export
    exporter.shutdown()


@pytest.fixture
def api(make_api: Callable[..., Any], plans_file: Callable[[str], Any], clickhouse: Client) -> Any:
    """The app on the metering plans, with usage sliced by model and the clock at ``T``."""
    clickhouse.insert(tables.USAGE_DIMENSIONS, [["model", True, 1]], column_names=["Attribute", "Active", "Version"])
    return make_api(now=T, plans_file=plans_file(PLANS), quota_cache_seconds=0)


def _check(api: Any, user: str, feature: str, **params: object) -> dict[str, Any]:
    response = api.get(f"/api/v1/quotas/{feature}/check", params=params, headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def _quota(api: Any, user: str, feature: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/quotas/{feature}", headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def test_fractional_amounts_add_up_exactly(api, send):
    send([("ana", "credits", MINUTE, 0.1), ("ana", "credits", T, 0.2)])
    body = _quota(api, "ana", "credits")
    assert (body["unit"], body["used"], body["limit"], body["remaining"]) == ("credits", 0.3, 1, 0.7)
    assert body["limits"][0]["used"] == 0.3
    assert _check(api, "ana", "credits", amount="0.7")["allowed"] is True
    refused = _check(api, "ana", "credits", amount="0.700001")
    assert (refused["allowed"], refused["amount"], refused["unit"]) == (False, 0.700001, "credits")
    assert refused["binding"]["frees_at"] == _z(T.replace(hour=0, minute=0, second=0) + timedelta(days=1))


def test_a_5h_window_beside_a_7d_one_names_the_binding_one_and_when_it_frees_up(api, send):
    oldest_in_5h = MINUTE - timedelta(minutes=280)
    send(
        [
            ("ben", "ai_tokens", MINUTE - timedelta(hours=6), 500),  # in the 7d window only
            ("ben", "ai_tokens", MINUTE - timedelta(minutes=300), 50),  # one minute before the 5h window
            ("ben", "ai_tokens", oldest_in_5h, 600),
            ("ben", "ai_tokens", MINUTE - timedelta(minutes=60), 300),
        ]
    )
    body = _quota(api, "ben", "ai_tokens")
    limits = {item["window"]: item for item in body["limits"]}
    assert (limits["5h"]["used"], limits["5h"]["remaining"]) == (900, 100)
    assert (limits["7d"]["used"], limits["7d"]["remaining"]) == (1450, 550)
    assert limits["5h"]["period_start"] == _z(MINUTE - timedelta(minutes=299))
    assert (body["binding"]["window"], body["used"], body["limit"], body["remaining"]) == ("5h", 900, 1000, 100)
    # In a listing a rolling window frees up when its oldest usage leaves.
    assert limits["5h"]["frees_at"] == _z(oldest_in_5h + timedelta(hours=5))
    assert limits["7d"]["frees_at"] == _z(MINUTE - timedelta(hours=6) + timedelta(days=7))

    fits = _check(api, "ben", "ai_tokens", amount=100)
    assert (fits["allowed"], fits["binding"]["window"], fits["remaining"]) == (True, "5h", 100)
    small = _check(api, "ben", "ai_tokens", amount=150)  # needs 50 gone: the 600 at oldest_in_5h
    assert (small["allowed"], small["binding"]["window"]) == (False, "5h")
    assert small["binding"]["frees_at"] == _z(oldest_in_5h + timedelta(hours=5))
    large = _check(api, "ben", "ai_tokens", amount=800)  # needs 700 gone: the 300 an hour ago too
    assert large["binding"]["frees_at"] == _z(MINUTE - timedelta(minutes=60) + timedelta(hours=5))
    assert _check(api, "ben", "ai_tokens", amount=1001)["binding"]["frees_at"] is None  # never fits


def test_a_dimension_value_limit_tighter_than_the_total_binds_for_that_value_only(api, send):
    send([("cat", "ai_tokens", MINUTE, 250, {"model": "gpt-4o"}), ("cat", "ai_tokens", T, 100, {"model": "mini"})])
    gpt = _check(api, "cat", "ai_tokens", dimension="gpt-4o")
    assert (gpt["allowed"], gpt["dimension"], gpt["exceeded"]) == (False, "gpt-4o", True)
    assert (gpt["binding"]["window"], gpt["binding"]["dimension_value"], gpt["used"]) == ("month", "gpt-4o", 250)
    assert len(gpt["limits"]) == 3
    mini = _check(api, "cat", "ai_tokens", dimension="mini")
    assert (mini["allowed"], mini["binding"]["window"], mini["used"], mini["remaining"]) == (True, "5h", 350, 650)
    assert _check(api, "cat", "ai_tokens")["allowed"] is True

    body = _quota(api, "cat", "ai_tokens")
    assert (body["dimension"], body["used"], body["exceeded"]) == ("model", 350, False)
    [item] = body["dimensions"]
    assert (item["dimension_value"], item["used"], item["limit"], item["exceeded"]) == ("gpt-4o", 250, 200, True)
    assert [limit["window"] for limit in item["limits"]] == ["month"]
    refused = api.get("/api/v1/quotas/credits/check", params={"dimension": "x"}, headers=bearer("cat"))
    assert refused.status_code == 422 and "no dimension" in refused.json()["detail"]


def test_a_cycle_runs_from_the_assignment_day(make_api, plans_file, clickhouse, send):
    anchor = (T - timedelta(days=45)).replace(hour=15, minute=0, second=0)
    if anchor.day > 28:
        anchor -= timedelta(days=5)
    cycle_start = T.replace(day=anchor.day, hour=0, minute=0, second=0)
    if cycle_start > T:
        cycle_start = (cycle_start - timedelta(days=28)).replace(day=anchor.day)
    # What assigning the user on that day through the API leaves in the store.
    clickhouse.insert(
        tables.PLAN_ASSIGNMENTS, [["dan", "metered", ns(anchor)]], column_names=["UserId", "PlanId", "Version"]
    )
    api = make_api(now=T, plans_file=plans_file(PLANS), quota_cache_seconds=0)
    send([("dan", "seats", cycle_start - timedelta(seconds=1), 4), ("dan", "seats", cycle_start, 3)])
    body = _quota(api, "dan", "seats")
    assert (body["used"], body["binding"]["kind"], body["period_start"]) == (3, "cycle", _z(cycle_start))
    assert body["binding"]["frees_at"] == body["period_end"]
    assert datetime.fromisoformat(body["period_end"]).day == anchor.day


def test_lifetime_counts_usage_older_than_a_month_and_never_frees_up(api, send):
    send([("eve", "storage", T - timedelta(days=40), 600), ("eve", "storage", T, 300.5)])
    body = _quota(api, "eve", "storage")
    assert (body["unit"], body["used"], body["remaining"], body["binding"]["frees_at"]) == ("bytes", 900.5, 99.5, None)
    refused = _check(api, "eve", "storage", amount=100)
    assert (refused["allowed"], refused["reset_at"], refused["binding"]["kind"]) == (False, None, "lifetime")


def _admin_post(api: Any, path: str, body: dict[str, object]) -> dict[str, Any]:
    response = api.post(f"/api/v1/admin/{path}", json=body, headers=bearer("ops", admin=True))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_grant_raises_the_limits_it_matches_until_it_expires_and_a_correction_gives_usage_back(
    api, make_api, plans_file, send
):
    send([("fay", "ai_tokens", MINUTE - timedelta(minutes=10), 950, {"model": "gpt-4o"})])
    assert _check(api, "fay", "ai_tokens", amount=100)["allowed"] is False  # 5h: 950 of 1000

    expires = T + timedelta(minutes=30)
    grant = {"user_id": "fay", "feature_key": "ai_tokens", "amount": 200, "reason": "launch week"}
    _admin_post(api, "grants", {**grant, "effective_from": _z(T - timedelta(hours=1)), "expires_at": _z(expires)})
    granted = _check(api, "fay", "ai_tokens", amount=100)
    assert (granted["allowed"], granted["binding"]["window"], granted["remaining"]) == (True, "5h", 250)
    limits = {item["window"]: item for item in granted["limits"]}
    assert (limits["5h"]["granted"], limits["7d"]["granted"]) == (200, 200)
    # A grant without a dimension value raises the feature-total limits, not gpt-4o's own.
    gpt = _check(api, "fay", "ai_tokens", amount=1, dimension="gpt-4o")
    assert (gpt["allowed"], gpt["binding"]["dimension_value"]) == (False, "gpt-4o")

    at_expiry = make_api(now=expires, plans_file=plans_file(PLANS), quota_cache_seconds=0)
    before = make_api(now=expires - timedelta(milliseconds=1), plans_file=plans_file(PLANS), quota_cache_seconds=0)
    assert _check(before, "fay", "ai_tokens", amount=100)["allowed"] is True
    assert _check(at_expiry, "fay", "ai_tokens", amount=100)["allowed"] is False

    # A refund of a failed generation: the usage it gives back counts at once, the raw point stays.
    refund = {"user_id": "fay", "feature_key": "ai_tokens", "amount": -400, "reason": "failed generation"}
    _admin_post(api, "corrections", {**refund, "occurred_at": _z(MINUTE - timedelta(minutes=5))})
    refunded = _check(api, "fay", "ai_tokens", amount=100)
    assert {item["window"]: item["used"] for item in refunded["limits"]} == {"5h": 550, "7d": 550}
    listed = api.get("/api/v1/admin/corrections", params={"user_id": "fay"}, headers=bearer("ops", admin=True))
    [correction] = listed.json()["corrections"]
    assert (correction["amount"], correction["recorded_by"], correction["reason"]) == (-400, "ops", "failed generation")
