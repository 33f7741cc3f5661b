"""Cumulative monotonic sums become deltas: resets restart a run, duplicates count nothing."""

from __future__ import annotations

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import T0, usage_by_user, usage_point, usage_request
from usagemeter_clickhouse import tables
from usagemeter_collector._checks.cumulative import CumulativeToDelta, Undo

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_S = 10**9
_T0 = T0


def test_converter_runs_resets_and_duplicates():
    converter, undo = CumulativeToDelta(), Undo()
    series = ("svc", "feature.usage", (("user.id", "u"),))
    assert converter.convert(series, _T0, _T0 + 10 * _S, 5.0, undo) == (_T0, 5.0)
    assert converter.convert(series, _T0, _T0 + 20 * _S, 8.0, undo) == (_T0 + 10 * _S, 3.0)
    assert converter.convert(series, _T0, _T0 + 20 * _S, 8.0, undo).value is None
    assert converter.convert(series, _T0, _T0 + 15 * _S, 9.0, undo).value is None
    assert converter.convert(series, _T0, _T0 + 30 * _S, 2.0, undo) == (_T0, 2.0)
    assert converter.convert(series, _T0 + 40 * _S, _T0 + 50 * _S, 4.0, undo) == (_T0 + 40 * _S, 4.0)
    assert converter.convert(("other",), _T0, _T0 + 10 * _S, 1.0, undo) == (_T0, 1.0)


def test_rollback_forgets_only_its_own_conversions():
    converter = CumulativeToDelta()
    first, second = Undo(), Undo()
    converter.convert("a", _T0, _T0 + 1, 5.0, first)
    converter.convert("a", _T0, _T0 + 2, 7.0, second)
    converter.convert("b", _T0, _T0 + 1, 1.0, second)
    converter.rollback(second)
    assert len(converter) == 1
    assert converter.convert("a", _T0, _T0 + 2, 7.0, Undo()) == (_T0 + 1, 2.0)
    converter.rollback(first)  # "a" moved on since: its newer state is kept
    assert converter.convert("a", _T0, _T0 + 2, 7.0, Undo()).value is None


def _send(collector, *points) -> ExportMetricsServiceResponse:
    body = usage_request(list(points), temporality=_CUMULATIVE).SerializeToString()
    response = httpx.post(
        f"http://127.0.0.1:{collector.http_port}/v1/metrics",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text
    return ExportMetricsServiceResponse.FromString(response.content)


def test_cumulative_usage_with_reset_and_duplicate_is_exact(collector, clickhouse):
    _send(collector, usage_point("alice", 5, _T0 + 10 * _S, start_ns=_T0))
    _send(collector, usage_point("alice", 8, _T0 + 20 * _S, start_ns=_T0))
    _send(collector, usage_point("alice", 8, _T0 + 20 * _S, start_ns=_T0))  # retried export: exact duplicate
    _send(collector, usage_point("alice", 2, _T0 + 30 * _S, start_ns=_T0))  # counter reset: value went down
    restart = _T0 + 35 * _S
    _send(collector, usage_point("alice", 6, _T0 + 40 * _S, start_ns=restart))  # new run: start time changed
    _send(collector, usage_point("alice", 7, _T0 + 50 * _S, start_ns=restart), usage_point("bob", 3, _T0 + 50 * _S))

    assert usage_by_user(clickhouse) == {"alice": 5 + 3 + 2 + 6 + 1, "bob": 3.0}
    rows = clickhouse.query(
        "SELECT toUnixTimestamp64Nano(StartTimeUnix), toUnixTimestamp64Nano(TimeUnix), Value, AggregationTemporality "
        f"FROM {tables.METRICS_SUM} WHERE Attributes['user.id'] = 'alice' ORDER BY TimeUnix"
    ).result_rows
    assert rows == [
        (_T0, _T0 + 10 * _S, 5.0, 1),
        (_T0 + 10 * _S, _T0 + 20 * _S, 3.0, 1),
        (_T0, _T0 + 30 * _S, 2.0, 1),
        (restart, _T0 + 40 * _S, 6.0, 1),
        (_T0 + 40 * _S, _T0 + 50 * _S, 1.0, 1),
    ]
