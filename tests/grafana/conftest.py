"""Dashboards and provisioning files as shipped, and usage data to run their queries on."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from usagemeter_clickhouse import Client, tables

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


@dataclass(frozen=True)
class UsagePoint:
    service: str
    feature: str
    user: str
    time_ns: int
    value: float


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
    usage: tuple[UsagePoint, ...]
    spans: tuple[UseSpan, ...]
    other_metric_rows: int
    other_spans: int


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _usage_points(now: datetime) -> list[UsagePoint]:
    points = []
    for service, features in FEATURES_BY_SERVICE.items():
        for feature in features:
            for u, user in enumerate(USERS):
                for i, ago in enumerate(MINUTES_AGO):
                    moment = now - timedelta(minutes=ago, seconds=7 * u)
                    points.append(UsagePoint(service, feature, user, _ns(moment), float((i + u) % 4 + 1)))
    return points


def _use_spans(now: datetime) -> list[UseSpan]:
    spans = []
    for service, features in FEATURES_BY_SERVICE.items():
        for feature in features:
            for u, user in enumerate(USERS):
                for i in range(3):
                    moment = now - timedelta(minutes=10 + 20 * i, seconds=u)
                    model = MODELS[(i + u) % len(MODELS)]
                    spans.append(UseSpan(service, feature, user, _ns(moment), model, 100 + 10 * i, 200 + u))
    return spans


def _insert_usage(client: Client, points: list[UsagePoint], now: datetime) -> int:
    columns = ["ServiceName", "MetricName", "Attributes", "StartTimeUnix", "TimeUnix", "Value"]
    columns += ["AggregationTemporality", "IsMonotonic"]
    rows: list[list[Any]] = [
        [
            p.service,
            tables.USAGE_METRIC,
            {tables.USER_ATTRIBUTE: p.user, tables.FEATURE_ATTRIBUTE: p.feature},
            p.time_ns - 60_000_000_000,
            p.time_ns,
            p.value,
            1,
            True,
        ]
        for p in points
    ]
    # A cumulative request counter next to usage: stored raw, never rolled up as usage.
    others = [
        [
            "chat-api",
            "http.server.requests",
            {"http.route": "/chat"},
            _ns(now - timedelta(hours=1)),
            t,
            10.0 * k,
            2,
            True,
        ]
        for k, t in enumerate(_ns(now - timedelta(minutes=m)) for m in (3, 33, 63))
    ]
    client.insert(tables.METRICS_SUM, rows + others, column_names=columns)
    return len(others)


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
            *(_ns(now - timedelta(minutes=m)), uuid.uuid4().hex, uuid.uuid4().hex[:16], "POST /chat", "Server"),
            *("chat-api", {"http.route": "/chat", "prompt_tokens": "999"}, 9_000_000, "Error" if m == 12 else "Ok"),
        ]
        for m in (2, 12, 22)
    ]
    client.insert(tables.TRACES, rows + requests, column_names=columns)
    return len(requests)


@pytest.fixture
def seeded(clickhouse: Client) -> SeededData:
    """The ``clickhouse`` fixture's database with usage points and spans from the last ~90 minutes."""
    now = datetime.now(UTC).replace(microsecond=0)
    points, spans = _usage_points(now), _use_spans(now)
    other_rows = _insert_usage(clickhouse, points, now)
    other_spans = _insert_spans(clickhouse, spans, now)
    return SeededData(now, tuple(points), tuple(spans), other_rows, other_spans)
