"""Dashboards and provisioning files as shipped, and telemetry to run their queries on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana import seed_collector, seed_quotas, seed_workers
from tests.grafana.rows import (
    CUMULATIVE,
    MetricPoint,
    UsagePoint,
    insert_gauges,
    insert_histograms,
    insert_sums,
    moments_today,
    ns,
    usage_as_metric,
)
from usagemeter_clickhouse import Client, SchemaOptions, connect, migrate, tables

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "grafana" / "provisioning"
DASHBOARD_FILES = sorted((PROVISIONING / "dashboards").rglob("*.json"))
PLUGIN_TYPE = "grafana-clickhouse-datasource"


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def provisioned_datasource() -> dict[str, Any]:
    """The single ClickHouse datasource provisioned for the dashboards."""
    config = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yaml").read_text(encoding="utf-8"))
    sources = [s for s in config["datasources"] if s["type"] == PLUGIN_TYPE]
    assert len(sources) == 1, "exactly one ClickHouse datasource is provisioned"
    return sources[0]


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p.get("type") != "row"]


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "query"]


def variable_sql(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return query["rawSql"] if isinstance(query, dict) else str(query)


SERVICES = ("chat-api", "batch-worker")
#: Which features each service reports; not every service has every feature, so chained
#: variables have something to narrow.
FEATURES_BY_SERVICE = {
    "chat-api": ("ai_content_generation", "pdf_export"),
    "batch-worker": ("pdf_export",),
}
USERS = ("alice", "bob", "carol")
MODELS = ("gpt-4o-mini", "claude-haiku")
MINUTES_AGO = tuple(range(5, 95, 10))
#: (service, conversion name, conversions) reported today.
CONVERSIONS = (("chat-api", "signup", 3.0), ("chat-api", "lead", 5.0), ("chat-api", "upgrade", 2.0))
CONVERSIONS += (("batch-worker", "lead", 4.0),)
#: Reported three days before this month began: in no current total.
EARLIER_CONVERSIONS = (("chat-api", "signup", 100.0),)


@dataclass(frozen=True)
class UseSpan:
    service: str
    feature: str
    user: str
    time_ns: int
    model: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class SeededData:
    """What was inserted, for computing expected panel values."""

    now: datetime
    #: Metered uses inside the last two hours.
    usage: tuple[UsagePoint, ...]
    spans: tuple[UseSpan, ...]
    #: Sum points other than usage inside the last two hours.
    other_sums: tuple[MetricPoint, ...]
    other_spans: int


def _usage_points(now: datetime) -> list[UsagePoint]:
    points = []
    for service, features in FEATURES_BY_SERVICE.items():
        for feature in features:
            for u, user in enumerate(USERS):
                for i, ago in enumerate(MINUTES_AGO):
                    moment = now - timedelta(minutes=ago, seconds=7 * u)
                    value, model = float((i + u) % 4 + 1), MODELS[(i + u) % len(MODELS)]
                    points.append(UsagePoint(service, feature, user, ns(moment), value, model))
    return points


def _use_spans(now: datetime) -> list[UseSpan]:
    spans = []
    for service, features in FEATURES_BY_SERVICE.items():
        for feature in features:
            for u, user in enumerate(USERS):
                for i in range(3):
                    moment = now - timedelta(minutes=10 + 20 * i, seconds=u)
                    model = MODELS[(i + u) % len(MODELS)]
                    spans.append(UseSpan(service, feature, user, ns(moment), model, 100 + 10 * i, 200 + u))
    return spans


def _requests(now: datetime) -> list[MetricPoint]:
    # A cumulative request counter next to usage: stored raw, never rolled up as usage.
    return [
        MetricPoint("chat-api", "http.server.requests", {"http.route": "/chat"}, t, 10.0 * k, CUMULATIVE)
        for k, t in enumerate(ns(now - timedelta(minutes=m)) for m in (3, 33, 63))
    ]


def _conversions(now: datetime) -> list[MetricPoint]:
    moments = moments_today(now, len(CONVERSIONS))
    return [
        MetricPoint(service, tables.CONVERSION_METRIC, {tables.CONVERSION_ATTRIBUTE: name}, ns(moment), value)
        for (service, name, value), moment in zip(CONVERSIONS, moments, strict=True)
    ]


def _earlier_conversions(now: datetime) -> list[MetricPoint]:
    month_start = datetime.combine(now.date().replace(day=1), time(), tzinfo=UTC)
    when = ns(month_start - timedelta(days=3))
    return [
        MetricPoint(service, tables.CONVERSION_METRIC, {tables.CONVERSION_ATTRIBUTE: name}, when, value)
        for service, name, value in EARLIER_CONVERSIONS
    ]


def _insert_workers(client: Client, now: datetime) -> list[MetricPoint]:
    workers = seed_workers.WORKERS
    insert_gauges(client, [p for w in workers for p in seed_workers.heartbeats(w, now)] + seed_workers.depths(now))
    insert_histograms(client, [p for w in workers for p in seed_workers.durations(w, now)])
    return [p for w in workers for p in seed_workers.jobs(w, now)]


def _insert_spans(client: Client, spans: list[UseSpan], now: datetime) -> int:
    columns = ["Timestamp", "TraceId", "SpanId", "SpanName", "SpanKind", "ServiceName"]
    columns += ["SpanAttributes", "Duration", "StatusCode"]
    rows: list[list[Any]] = []
    for s in spans:
        attributes = {
            tables.USER_ATTRIBUTE: s.user,
            tables.FEATURE_ATTRIBUTE: s.feature,
            "model": s.model,
            "prompt_tokens": str(s.prompt_tokens),
            "completion_tokens": str(s.completion_tokens),
        }
        trace = uuid.uuid4().hex
        rows.append(
            [s.time_ns, trace, trace[:16], "feature.use", "Internal", s.service, attributes, 2_500_000, "Unset"]
        )
    # Request spans around the uses: they carry no usage metadata.
    requests = [
        [
            *(ns(now - timedelta(minutes=m)), uuid.uuid4().hex, uuid.uuid4().hex[:16], "POST /chat", "Server"),
            *("chat-api", {"http.route": "/chat", "prompt_tokens": "999"}, 9_000_000, "Error" if m == 12 else "Ok"),
        ]
        for m in (2, 12, 22)
    ]
    client.insert(tables.TRACES, rows + requests, column_names=columns)
    return len(requests)


#: A correction and its undoing, recorded for every user and feature with usage: visible, and adding up to nothing.
CORRECTIONS = ((Decimal("0.5"), "double-counted retry"), (Decimal("-0.5"), "undo: the retry was real"))


def _insert_corrections(client: Client, usage: list[UsagePoint]) -> None:
    latest: dict[tuple[str, str], int] = {}
    for p in usage:
        latest[(p.user, p.feature)] = max(p.time_ns, latest.get((p.user, p.feature), 0))
    rows = [
        [uuid.uuid4(), user, feature, "", "", moment, amount, reason, "operator", moment]
        for (user, feature), at in latest.items()
        for moment in [datetime.fromtimestamp(at // 1_000_000_000, UTC)]
        for amount, reason in CORRECTIONS
    ]
    columns = ["CorrectionId", "UserId", "FeatureKey", "DimensionKey", "DimensionValue", "OccurredAt", "Quantity"]
    client.insert(tables.USAGE_CORRECTIONS, rows, column_names=[*columns, "Reason", "RecordedBy", "RecordedAt"])


def _seed_time() -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    # Queries run as of one second later; both must fall on the same UTC day.
    return now - timedelta(seconds=1) if (now + timedelta(seconds=1)).date() != now.date() else now


@pytest.fixture(scope="session")
def clickhouse(chdb_url: str) -> Iterator[Client]:
    """One migrated database for every test here: they only read, so they share it and its data."""
    database = f"t_grafana_{uuid.uuid4().hex[:8]}"
    client = connect(chdb_url, database, create_database=True)
    migrate(client, SchemaOptions(dimension_attributes=("model",)))
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


@pytest.fixture(scope="session")
def seeded(clickhouse: Client) -> SeededData:
    """The shared database with usage, spans, plans, conversions and worker telemetry."""
    now = _seed_time()
    quota_usage = seed_quotas.period_usage(now)
    usage = _usage_points(now) + quota_usage
    spans = _use_spans(now) + [UseSpan(p.service, p.feature, p.user, p.time_ns, MODELS[0], 50, 60) for p in quota_usage]
    seed_quotas.insert_plans(clickhouse)
    others = _requests(now) + _conversions(now) + _insert_workers(clickhouse, now)
    earlier = [usage_as_metric(p) for p in seed_quotas.earlier_usage(now)] + _earlier_conversions(now)
    insert_sums(clickhouse, [usage_as_metric(p) for p in usage] + others + earlier)
    other_spans = _insert_spans(clickhouse, spans, now)
    _insert_corrections(clickhouse, usage)
    seed_collector.insert(clickhouse, now)
    return SeededData(now, tuple(usage), tuple(spans), tuple(others), other_spans)
