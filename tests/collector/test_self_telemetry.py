"""The collector stores its own telemetry through its own ingest, as OTLP metrics of service usagemeter-collector."""

from __future__ import annotations

import math
from typing import Any

import httpx

from tests.collector.conftest import T0, LoopThread, usage_point, usage_request, wait_for
from usagemeter_clickhouse import tables

SERVICE = "usagemeter-collector"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
#: Points in one report: fourteen delta sums, four gauges and the insert latency histogram.
REPORT_POINTS = 19
GAUGES = 4


def _post(port: int, body: bytes) -> httpx.Response:
    response = httpx.post(f"http://127.0.0.1:{port}/v1/metrics", content=body, headers=PROTOBUF)
    assert response.status_code == 200, response.text
    return response


def _totals(clickhouse: Any) -> dict[tuple[str, str], float]:
    """Sum of the collector's delta rows per (metric, outcome)."""
    rows = clickhouse.undrained.query(
        f"SELECT MetricName, Attributes['outcome'], sum(Value) FROM {tables.METRICS_SUM}"
        " WHERE ServiceName = {service:String} GROUP BY 1, 2",
        parameters={"service": SERVICE},
    ).result_rows
    return {(name, outcome): value for name, outcome, value in rows}


def _reports(clickhouse: Any) -> int:
    query = f"SELECT count() FROM {tables.METRICS_GAUGE} WHERE ServiceName = {{service:String}}"
    return int(clickhouse.undrained.query(query, parameters={"service": SERVICE}).result_rows[0][0]) // GAUGES


def _send_traffic(port: int) -> int:
    """Three requests of 40 valid points each, one of them with a rejected point and resent once; the points sent."""
    for batch in range(3):
        points = [usage_point(f"user-{batch}", 1.0, T0 + batch * 1000 + i) for i in range(40)]
        if batch == 1:
            points.append(usage_point("bob", -1.0, T0))
        body = usage_request(points).SerializeToString()
        _post(port, body)
        if batch == 2:
            _post(port, body)
    return 120


def test_own_telemetry_counts_what_was_sent(start_collector, clickhouse, loop_thread: LoopThread):
    collector = start_collector(self_telemetry_interval_seconds=0.3)
    sent = _send_traffic(collector.http_port)
    expected = {
        ("usagemeter.collector.items", "accepted"): sent,
        ("usagemeter.collector.items", "rejected"): 1,
        ("usagemeter.collector.requests", "received"): 4,
        ("usagemeter.collector.requests", "duplicate"): 1,
        ("usagemeter.collector.requests", "refused"): 0,
    }

    def reported() -> bool:
        totals = _totals(clickhouse)
        return all(totals.get(key) == value for key, value in expected.items())

    assert wait_for(reported, 30), _totals(clickhouse)
    # Later reports carry no growth of their own requests or items: the figures stay put.
    reports = _reports(clickhouse)
    assert wait_for(lambda: _reports(clickhouse) >= reports + 3, 30)
    totals = _totals(clickhouse)
    assert {key: totals[key] for key in expected} == expected

    loop_thread.run(collector.stop())
    final = _totals(clickhouse)
    reports = _reports(clickhouse)
    # A report's own rows are counted by a later report, once inserted: never the last one, never more than stored.
    own_rows = final[("usagemeter.collector.rows_inserted", "")] - sent
    assert own_rows % REPORT_POINTS == 0
    assert 0 <= own_rows <= REPORT_POINTS * (reports - 1)
    assert {key: final[key] for key in expected} == expected


def test_own_telemetry_resource_gauges_and_latency(start_collector, clickhouse, loop_thread: LoopThread):
    collector = start_collector(self_telemetry_interval_seconds=0.3)
    _send_traffic(collector.http_port)
    assert wait_for(lambda: _reports(clickhouse) >= 3, 30)
    loop_thread.run(collector.stop())

    instances = clickhouse.query(
        f"SELECT DISTINCT ResourceAttributes['service.instance.id'] FROM {tables.METRICS_SUM}"
        " WHERE ServiceName = {service:String}",
        parameters={"service": SERVICE},
    ).result_rows
    assert instances == [(collector.instance_id,)]
    gauges = clickhouse.query(
        f"SELECT DISTINCT MetricName, MetricUnit FROM {tables.METRICS_GAUGE} WHERE ServiceName = {{service:String}}",
        parameters={"service": SERVICE},
    ).result_rows
    assert sorted(gauges) == [
        ("usagemeter.collector.oldest_unsent_age", "s"),
        ("usagemeter.collector.spool_bytes", "By"),
        ("usagemeter.collector.spool_segments", "{segment}"),
        ("usagemeter.collector.spool_writable", "1"),
    ]
    count, total, slowest, units = clickhouse.query(
        f"SELECT sum(Count), sum(Sum), max(Max), groupUniqArray(MetricUnit) FROM {tables.METRICS_HISTOGRAM}"
        " WHERE ServiceName = {service:String} AND MetricName = 'usagemeter.collector.insert_duration'",
        parameters={"service": SERVICE},
    ).result_rows[0]
    inserts = _totals(clickhouse)[("usagemeter.collector.inserts", "")]
    assert count == inserts > 0
    assert units == ["s"] and 0 < slowest <= total and math.isfinite(total)


def test_reporting_can_be_switched_off(start_collector, clickhouse):
    collector = start_collector(self_telemetry_interval_seconds=0)
    _send_traffic(collector.http_port)
    assert collector.instance_id is None
    assert _totals(clickhouse) == {}
