"""Spool segments are sealed by size or age and inserted in chunks; stop() inserts what is spooled."""

from __future__ import annotations

import threading

import httpx

from tests.collector.conftest import T0, count_rows, post_metrics, usage_by_user, usage_point, usage_request
from usagemeter_clickhouse import tables

_LONG_DELAY = 600.0


def test_full_segment_of_rows_is_inserted_without_waiting_for_the_delay_in_chunks(start_collector, clickhouse):
    collector = start_collector(
        batch_max_rows=100, spool_segment_bytes=1024, batch_max_delay_seconds=_LONG_DELAY, protobuf_metrics=False
    )
    points = [usage_point(f"user-{i % 10}", 1.0, T0 + i) for i in range(250)]
    response = post_metrics(collector.http_port, usage_request(points))
    assert response.status_code == 200
    assert count_rows(clickhouse, tables.METRICS_SUM) == 250
    assert usage_by_user(clickhouse) == {f"user-{i}": 25.0 for i in range(10)}
    assert collector.telemetry.inserts == 3


def test_full_segments_of_requests_are_inserted_without_waiting_for_the_delay(start_collector, clickhouse):
    collector = start_collector(spool_segment_bytes=1024, batch_max_delay_seconds=_LONG_DELAY)
    for number in range(3):
        points = [usage_point(f"user-{i % 10}", 1.0, T0 + number * 100 + i) for i in range(100)]
        assert post_metrics(collector.http_port, usage_request(points)).status_code == 200
    assert count_rows(clickhouse, tables.METRICS_SUM) == 300
    assert usage_by_user(clickhouse) == {f"user-{i}": 30.0 for i in range(10)}
    # Each request filled a segment of its own: one insert into the landing table per segment.
    assert collector.telemetry.inserts == 3


def test_stop_inserts_spooled_rows(start_collector, clickhouse, loop_thread):
    collector = start_collector(batch_max_delay_seconds=_LONG_DELAY)
    responses: list[httpx.Response] = []

    def send(user: str) -> None:
        responses.append(post_metrics(collector.http_port, usage_request([usage_point(user, 2.0, T0)])))

    senders = [threading.Thread(target=send, args=(user,)) for user in ("alice", "bob")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    # Acknowledged from the spool while the segment still waits for its delay.
    assert [r.status_code for r in responses] == [200, 200]
    assert not collector.drained
    loop_thread.run(collector.stop())
    assert collector.drained
    assert usage_by_user(clickhouse) == {"alice": 2.0, "bob": 2.0}
