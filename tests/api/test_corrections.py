"""Corrections through ``/admin/corrections``: counted once in every rollup, never in the raw telemetry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.api.api_support import NOW, bearer
from tests.collector.conftest import LoopThread
from tests.conftest import wait_for
from usagemeter_api.domain.corrections import Correction, insert_settings, record_correction
from usagemeter_api.domain.periods import Window
from usagemeter_api.domain.usage.queries import usage_totals
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_clickhouse import Client, connect, tables
from usagemeter_collector import Collector, CollectorSettings

ADMIN = bearer("root", admin=True)
CORRECTIONS = "/api/v1/admin/corrections"
FIX = {"user_id": "alice", "feature_key": "ai_tokens", "amount": -120.5, "reason": "Retried job metered twice"}
_ROLLUPS = (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST)
_HOUR_MS = 3_600_000


def _allow(client: Client, *attributes: str) -> None:
    client.insert(tables.USAGE_DIMENSIONS, [[name, True, 1] for name in attributes], ["Attribute", "Active", "Version"])


def _rollup_totals(client: Client, user: str = "alice") -> dict[str, dict[tuple[str, str], str]]:
    """Per rollup: (DimensionKey, DimensionValue) -> the summed Quantity, as text."""
    totals: dict[str, dict[tuple[str, str], str]] = {}
    for table in _ROLLUPS:
        rows = client.query(
            f"SELECT DimensionKey, DimensionValue, sum(Quantity) FROM {table} WHERE UserId = {{user:String}}"
            " GROUP BY DimensionKey, DimensionValue",
            parameters={"user": user},
        ).result_rows
        totals[table] = {(key, value): str(total) for key, value, total in rows}
    return totals


def test_a_correction_is_recorded_with_who_and_when_and_counts_in_every_rollup(api, clickhouse):
    created = api.post(CORRECTIONS, json=FIX, headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["amount"], body["recorded_by"], body["recorded_at"], body["occurred_at"]) == (
        -120.5,
        "root",
        NOW.isoformat().replace("+00:00", "Z"),
        NOW.isoformat().replace("+00:00", "Z"),
    )
    assert (body["dimension_key"], body["dimension_value"]) == (None, None)
    expected = {("", ""): "-120.500000"}
    assert _rollup_totals(clickhouse) == {table: expected for table in _ROLLUPS}
    services = clickhouse.query(f"SELECT DISTINCT ServiceName FROM {tables.USAGE_MINUTE}").result_rows
    assert services == [(tables.CORRECTION_SERVICE,)]


def test_a_correction_of_a_dimension_value_counts_on_it_and_on_the_feature_total(api, clickhouse):
    _allow(clickhouse, "model", "region")
    fix = FIX | {"amount": 7, "dimension_key": "model", "dimension_value": "gpt-4o"}
    assert api.post(CORRECTIONS, json=fix, headers=ADMIN).status_code == 201
    expected = {("", ""): "7.000000", ("model", "gpt-4o"): "7.000000"}
    assert _rollup_totals(clickhouse) == {table: expected for table in _ROLLUPS}


def test_a_dimension_off_the_allow_list_is_refused_naming_it_and_the_list(api, clickhouse):
    _allow(clickhouse, "model")
    fix = FIX | {"dimension_key": "tier", "dimension_value": "gold"}
    response = api.post(CORRECTIONS, json=fix, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "dimension_key 'tier' is not on the dimension allow-list (USAGEMETER_DIMENSION_ATTRIBUTES): model"
    )
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_CORRECTIONS}").result_rows[0][0] == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount": 0}, "changes nothing"),
        ({"amount": 0.0000001}, "amount"),
        ({"amount": -(10**12) - 1}, "amount"),
        ({"amount": 10**12 + 1}, "amount"),
        ({"reason": ""}, "reason"),
        ({"dimension_key": "model"}, "both dimension_key and dimension_value"),
        ({"dimension_value": "gpt-4o"}, "both dimension_key and dimension_value"),
        ({"occurred_at": (NOW + timedelta(minutes=1, milliseconds=1)).isoformat()}, "in the future"),
        ({"occurred_at": (NOW - timedelta(days=400, milliseconds=1)).isoformat()}, "older than the rollups keep"),
        ({"occurred_at": "2026-12-01T10:00:00"}, "occurred_at"),
        ({"user_id": "u" * 257}, "user_id"),
    ],
)
def test_bad_corrections_are_refused_clearly_and_record_nothing(api, clickhouse, change, named):
    response = api.post(CORRECTIONS, json=FIX | change, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert named in response.text
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_CORRECTIONS}").result_rows[0][0] == 0


def test_a_correction_a_minute_ahead_or_at_the_retention_edge_is_accepted(api):
    for moment in (NOW + timedelta(minutes=1), NOW - timedelta(days=400)):
        response = api.post(CORRECTIONS, json=FIX | {"occurred_at": moment.isoformat()}, headers=ADMIN)
        assert response.status_code == 201, response.text


def test_correction_endpoints_need_role_admin(api):
    assert api.post(CORRECTIONS, json=FIX).status_code == 401
    assert api.get(CORRECTIONS).status_code == 401
    assert api.post(CORRECTIONS, json=FIX, headers=bearer("alice")).status_code == 403
    assert api.get(CORRECTIONS, headers=bearer("alice")).status_code == 403
    assert api.get(CORRECTIONS, headers=ADMIN).json() == {"corrections": [], "next_cursor": None}


def test_a_correction_cannot_be_deleted_only_undone_by_its_opposite(api, clickhouse):
    correction_id = api.post(CORRECTIONS, json=FIX, headers=ADMIN).json()["correction_id"]
    assert api.delete(f"{CORRECTIONS}/{correction_id}", headers=ADMIN).status_code in (404, 405)
    paths = api.get("/openapi.json").json()["paths"]
    assert [path for path, ops in paths.items() if "corrections" in path and "delete" in ops] == []
    api.post(CORRECTIONS, json=FIX | {"amount": 120.5, "reason": "Undo: wrong user"}, headers=ADMIN)
    assert _rollup_totals(clickhouse)[tables.USAGE_DAY] == {("", ""): "0.000000"}
    assert len(api.get(CORRECTIONS, headers=ADMIN).json()["corrections"]) == 2


def test_a_retried_post_with_the_same_idempotency_key_counts_once(api, make_api, clickhouse):
    retry = {**ADMIN, "Idempotency-Key": "fix-42"}
    first = api.post(CORRECTIONS, json=FIX, headers=retry)
    second = make_api(now=NOW + timedelta(seconds=30)).post(CORRECTIONS, json=FIX, headers=retry)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_CORRECTIONS}").result_rows[0][0] == 1
    assert _rollup_totals(clickhouse) == {table: {("", ""): "-120.500000"} for table in _ROLLUPS}
    reused = api.post(CORRECTIONS, json=FIX | {"amount": 3}, headers=retry)
    assert reused.status_code == 422
    assert "fix-42" in reused.json()["detail"]
    # The key reused for another user is that user's correction: recorded, never dropped as a duplicate.
    assert api.post(CORRECTIONS, json=FIX | {"user_id": "bob"}, headers=retry).status_code == 201
    assert _rollup_totals(clickhouse, "bob") == {table: {("", ""): "-120.500000"} for table in _ROLLUPS}


def test_a_repeated_insert_of_a_correction_counts_once_in_the_table_and_every_rollup(clickhouse):
    # Two retries racing past the lookup both insert: the deduplication token drops the second block
    # in the table and in each view's rollup, even though the block's RecordedAt differs, and even on a
    # server whose profile does not deduplicate in dependent views (the default before ClickHouse 24).
    clickhouse.set_client_setting("deduplicate_blocks_in_dependent_materialized_views", "0")
    correction = Correction(
        correction_id=str(uuid4()),
        user_id="alice",
        feature_key="ai_tokens",
        dimension_key=None,
        dimension_value=None,
        occurred_at=NOW,
        amount_micros=-2_500_000,
        reason="retried",
        recorded_by="root",
        recorded_at=NOW,
    )
    record_correction(clickhouse, correction)
    columns = clickhouse.query(f"SELECT * FROM {tables.USAGE_CORRECTIONS} LIMIT 0").column_names
    row = clickhouse.query(f"SELECT * FROM {tables.USAGE_CORRECTIONS}").result_rows[0]
    retried = [*row[:-1], NOW + timedelta(minutes=3)]
    clickhouse.insert(tables.USAGE_CORRECTIONS, [retried], column_names=columns, settings=insert_settings(correction))
    assert clickhouse.query(f"SELECT count() FROM {tables.USAGE_CORRECTIONS}").result_rows[0][0] == 1
    assert _rollup_totals(clickhouse) == {table: {("", ""): "-2.500000"} for table in _ROLLUPS}


def test_corrections_are_listed_by_user_feature_and_time_a_page_at_a_time(api):
    made = []
    for user, feature, hours in (("alice", "ai_tokens", 1), ("alice", "ai_tokens", 5), ("alice", "chat", 2)):
        at = (NOW - timedelta(hours=hours)).isoformat()
        fix = FIX | {"user_id": user, "feature_key": feature, "occurred_at": at}
        made.append(api.post(CORRECTIONS, json=fix, headers=ADMIN).json()["correction_id"])
    made.append(api.post(CORRECTIONS, json=FIX | {"user_id": "bob"}, headers=ADMIN).json()["correction_id"])

    def listed(**params: object) -> list[str]:
        body = api.get(CORRECTIONS, params=params, headers=ADMIN).json()
        return sorted(correction["correction_id"] for correction in body["corrections"])

    assert listed(user_id="alice", feature_key="ai_tokens") == sorted(made[:2])
    assert listed(user_id="bob") == [made[3]]
    since, until = (NOW - timedelta(hours=3)).isoformat(), (NOW - timedelta(minutes=30)).isoformat()
    assert listed(user_id="alice", since=since, until=until) == sorted([made[0], made[2]])
    first = api.get(CORRECTIONS, params={"limit": 3}, headers=ADMIN).json()
    rest = api.get(CORRECTIONS, params={"limit": 3, "cursor": first["next_cursor"]}, headers=ADMIN).json()
    assert (len(first["corrections"]), len(rest["corrections"]), rest["next_cursor"]) == (3, 1, None)
    paged = {c["correction_id"] for c in first["corrections"] + rest["corrections"]}
    assert paged == set(made)
    assert all(c["recorded_by"] == "root" and c["reason"] for c in first["corrections"])
    assert api.get(CORRECTIONS, params={"since": "2026-12-01T10:00:00"}, headers=ADMIN).status_code == 422


@pytest.fixture
def collector(chdb_url: str, database: str, clickhouse: Client, tmp_path: Path) -> Iterator[Collector]:
    """The real collector on free ports, inserting into the test's database."""
    loop = LoopThread()
    settings = CollectorSettings(
        host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        batch_max_delay_seconds=0.05,
        spool_dir=tmp_path / "spool",
        self_telemetry_interval_seconds=0,
    )
    running = Collector(lambda: connect(chdb_url, database), settings)
    loop.run(running.start())
    yield running
    loop.run(running.stop())
    loop.close()


def _send_usage(port: int, uses: list[tuple[float, dict[str, str]]]) -> None:
    exporter = OTLPMetricExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/metrics", preferred_temporality={Counter: AggregationTemporality.DELTA}
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=_HOUR_MS)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "chat-backend"}))
    try:
        counter = provider.get_meter("tests").create_counter(tables.USAGE_METRIC)
        for amount, attributes in uses:
            counter.add(amount, attributes)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()


def test_a_negative_correction_of_usage_sent_over_otlp_counts_in_the_totals_while_raw_rows_stay(
    collector: Collector, clickhouse: Client, make_api: Callable[..., object]
):
    _allow(clickhouse, "model")
    user = {"user.id": "alice", "feature.key": "ai_tokens"}
    _send_usage(collector.http_port, [(1000, user | {"model": "gpt-4o"}), (250.25, user | {"model": "mini"})])
    assert wait_for(lambda: collector.drained), "the collector did not insert what it acknowledged"
    raw_sql = f"SELECT count(), sum(Value) FROM {tables.METRICS_SUM} WHERE MetricName = '{tables.USAGE_METRIC}'"
    raw_before = clickhouse.query(raw_sql).result_rows
    assert raw_before == [(2, 1250.25)]

    now = datetime.now(UTC).replace(microsecond=0)
    api = make_api(now=now)
    fix = {**FIX, "amount": -400.125, "dimension_key": "model", "dimension_value": "gpt-4o"}
    assert api.post(CORRECTIONS, json=fix, headers=ADMIN).status_code == 201  # type: ignore[attr-defined]

    total, gpt, mini = (
        Slice.total("ai_tokens"),
        Slice("ai_tokens", "model", "gpt-4o"),
        Slice("ai_tokens", "model", "mini"),
    )
    window = Window(now - timedelta(hours=1), now + timedelta(hours=1))
    assert usage_totals(clickhouse, "alice", [total, gpt, mini], window) == {
        total: 850_125_000,
        gpt: 599_875_000,
        mini: 250_250_000,
    }
    corrected = {("", ""): "850.125000", ("model", "gpt-4o"): "599.875000", ("model", "mini"): "250.250000"}
    assert _rollup_totals(clickhouse) == {table: corrected for table in _ROLLUPS}
    assert clickhouse.query(raw_sql).result_rows == raw_before
