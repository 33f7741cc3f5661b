"""The collector's per-series and per-request memory is bounded: series limit, idle expiry, request hashes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import T0, post_metrics, usage_by_user, usage_point, usage_request, wait_for
from usagemeter_collector._checks.cumulative import CumulativeToDelta, SeriesLimitReached, Undo
from usagemeter_collector._spool.records import Record
from usagemeter_collector._spool.series import SeriesState, SeriesTable, series_digest
from usagemeter_collector._spool.state import SERIES_SUFFIX, SNAPSHOT_FILE, DurableState, StateLimits

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_S = 10**9


def _send(collector, *points) -> ExportMetricsServiceResponse:
    response = post_metrics(collector.http_port, usage_request(list(points), temporality=_CUMULATIVE))
    assert response.status_code == 200, response.text
    return ExportMetricsServiceResponse.FromString(response.content)


def _alice(value: float, seconds: int):
    return usage_point("alice", value, T0 + seconds * _S, start_ns=T0)


def test_series_digest_is_the_same_for_tuples_and_the_lists_messagepack_returns():
    key = (("svc", (("service.name", "a"),), "feature.usage"), (("user.id", "u"),))
    as_lists = [["svc", [["service.name", "a"]], "feature.usage"], [["user.id", "u"]]]
    assert series_digest(key) == series_digest(as_lists)
    assert series_digest(key) != series_digest((key[0], (("user.id", "v"),)))
    assert series_digest(series_digest(key)) == series_digest(key)


def test_converter_refuses_new_series_at_the_limit_but_converts_known_ones():
    converter, undo = CumulativeToDelta(max_series=2), Undo()
    converter.convert("a", T0, T0 + 1, 5.0, undo)
    converter.convert("b", T0, T0 + 1, 1.0, undo)
    try:
        converter.convert("c", T0, T0 + 1, 1.0, undo)
        raise AssertionError("a third series was admitted")
    except SeriesLimitReached as exc:
        assert "USAGEMETER_CUMULATIVE_MAX_SERIES" in str(exc)
    assert converter.convert("a", T0, T0 + 2, 7.0, undo) == (T0 + 1, 2.0)
    converter.rollback(undo)
    assert len(converter) == 0
    assert converter.convert("c", T0, T0 + 1, 1.0, Undo()) == (T0, 1.0)


@pytest.mark.parametrize("protobuf_metrics", [True, False], ids=["protobuf-path", "row-path"])
def test_new_series_beyond_the_limit_get_partial_success_while_known_series_keep_converting(
    start_collector, clickhouse, protobuf_metrics: bool
):
    collector = start_collector(cumulative_max_series=2, protobuf_metrics=protobuf_metrics)
    first = _send(collector, _alice(5, 10), usage_point("bob", 1, T0 + 10 * _S, start_ns=T0))
    assert first.partial_success.rejected_data_points == 0
    response = _send(
        collector, _alice(8, 20), usage_point("bob", 4, T0 + 20 * _S, start_ns=T0), usage_point("carol", 7, T0)
    )
    assert response.partial_success.rejected_data_points == 1
    assert "cumulative series limit reached" in response.partial_success.error_message
    assert "USAGEMETER_CUMULATIVE_MAX_SERIES" in response.partial_success.error_message
    assert usage_by_user(clickhouse) == {"alice": 8.0, "bob": 4.0}
    assert collector.telemetry.cumulative_series_refused == 1
    assert collector.telemetry.cumulative_series == 2
    exposition = httpx.get(f"http://127.0.0.1:{collector.http_port}/metrics").text
    assert "usagemeter_collector_cumulative_series_refused 1" in exposition
    assert "usagemeter_collector_cumulative_series 2" in exposition


def test_series_idle_past_the_ttl_is_forgotten_and_its_next_point_starts_a_new_run(start_collector, clickhouse):
    collector = start_collector(cumulative_series_ttl_seconds=1)
    _send(collector, _alice(5, 10))
    time.sleep(1.5)
    _send(collector, usage_point("bob", 1, T0 + 10 * _S, start_ns=T0))  # sealing its segment expires alice
    assert wait_for(lambda: collector.telemetry.cumulative_series == 1)
    _send(collector, _alice(8, 20))  # remembered, this would count 3
    assert usage_by_user(clickhouse) == {"alice": 13.0, "bob": 1.0}


def test_an_expired_series_frees_its_place_under_the_limit(start_collector, clickhouse):
    collector = start_collector(cumulative_max_series=1, cumulative_series_ttl_seconds=1)
    _send(collector, _alice(5, 10))
    time.sleep(1.5)
    response = _send(collector, usage_point("bob", 2, T0 + 10 * _S, start_ns=T0))
    assert response.partial_success.rejected_data_points == 0
    assert usage_by_user(clickhouse) == {"alice": 5.0, "bob": 2.0}


def _many_series(users: range, value: float, seconds: int):
    return [usage_point(f"user-{n}", value, T0 + seconds * _S, start_ns=T0) for n in users]


def test_series_state_survives_restarts_through_sidecars_and_a_compacted_snapshot(
    start_collector, clickhouse, loop_thread
):
    first = start_collector()
    # 3 x 10,000 series of 48 bytes each: the sidecars outgrow the 1 MiB floor and fold into a snapshot.
    for batch in range(3):
        _send(first, *_many_series(range(batch * 10_000, (batch + 1) * 10_000), 2, 10))
    spool = first.spool.directory
    assert wait_for(lambda: (spool / SNAPSHOT_FILE).exists())
    snapshot = (spool / SNAPSHOT_FILE).read_bytes()
    _send(first, *_many_series(range(5), 3, 20))  # after the snapshot: only these five are written, to a sidecar
    loop_thread.run(first.stop())
    assert (spool / SNAPSHOT_FILE).read_bytes() == snapshot
    assert list(spool.glob("*" + SERIES_SUFFIX))

    second = start_collector()
    assert len(second.converter) == 30_000
    _send(second, *_many_series(range(30_000), 4, 30))
    loop_thread.run(second.stop())
    third = start_collector()
    _send(third, *_many_series(range(3), 9, 40))
    totals = usage_by_user(clickhouse)
    assert len(totals) == 30_000
    assert {totals[f"user-{n}"] for n in range(3)} == {9.0}
    assert {totals[f"user-{n}"] for n in range(3, 30_000)} == {4.0}


def _record(number: int, updates=()) -> Record:
    return Record(hashlib.sha256(str(number).encode()).digest(), list(updates), {})


def test_request_hashes_are_bounded_the_oldest_forgotten_first_also_after_restart(tmp_path: Path):
    limits = StateLimits(max_hashes=3)
    state = DurableState(tmp_path, 600, limits)
    records = [_record(n) for n in range(5)]
    for record in records:
        state.add(record.digest, [])
    state.seal(f"{time.time_ns():020d}-a")
    assert [state.is_duplicate(r.digest) for r in records] == [False, False, True, True, True]
    reloaded = DurableState(tmp_path, 600, limits)
    reloaded.load([])
    assert [reloaded.is_duplicate(r.digest) for r in records] == [False, False, True, True, True]


def test_time_the_collector_was_stopped_does_not_count_as_idle(tmp_path: Path):
    limits = StateLimits(series_ttl_seconds=1)
    state = DurableState(tmp_path, 600, limits)
    state.add(_record(0).digest, [(("svc", "alice"), SeriesState(T0, T0 + 1, 5.0))])
    state.seal(f"{time.time_ns():020d}-a")
    time.sleep(1.5)  # stopped for longer than the TTL
    restarted = DurableState(tmp_path, 600, limits)
    restarted.load([])
    assert restarted.series.get(series_digest(("svc", "alice"))) == SeriesState(T0, T0 + 1, 5.0)


def test_series_table_keeps_update_order_and_only_moves_forward():
    table = SeriesTable(ttl_seconds=60)
    now = time.time()
    table.put(b"a" * 16, SeriesState(0, 10, 1.0), now - 120)
    table.put(b"b" * 16, SeriesState(0, 10, 1.0), now - 90)
    assert not table.put(b"b" * 16, SeriesState(0, 5, 9.0), now)  # older point: ignored
    table.put(b"a" * 16, SeriesState(0, 20, 2.0), now)  # updated: now the newest
    assert table.expire_idle() == 1
    assert b"b" * 16 not in table
    assert table.get(b"a" * 16) == SeriesState(0, 20, 2.0)
