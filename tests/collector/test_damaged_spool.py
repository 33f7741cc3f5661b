"""Damaged bytes in a spool segment cost the records they hit and no others; a torn tail is no loss.

The spool is filled by a collector whose inserts fail (its table is detached) and which stops before
the segments drain; the bytes are then changed on disk and a second collector starts on the spool.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import (
    T0,
    LoopThread,
    post_metrics,
    usage_by_user,
    usage_point,
    usage_request,
    wait_for,
)
from usagemeter_clickhouse import connect, tables
from usagemeter_collector import Collector, CollectorSettings
from usagemeter_collector._spool.records import decode_record
from usagemeter_collector._spool.resync import scan_segment
from usagemeter_collector._spool.segments import HEADER, QUARANTINE_DIR
from usagemeter_collector._spool.spool import LOCK_FILE

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_USERS = [f"user-{number}" for number in range(50)]
_DAMAGED = 17


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def fill_spool(
    spool_dir: Path, chdb_url: str, database: str, loop_thread: LoopThread, clickhouse: object
) -> Callable[[], None]:
    """Acknowledge one request per user into the spool and stop with all of them still spooled."""

    def fill() -> None:
        settings = CollectorSettings(
            host="127.0.0.1",
            grpc_port=0,
            http_port=0,
            spool_dir=spool_dir,
            batch_max_delay_seconds=0.05,
            self_telemetry_interval_seconds=0,
            drain_timeout_seconds=0.2,
        )
        collector = Collector(lambda: connect(chdb_url, database), settings)
        clickhouse.command(f"DETACH TABLE {tables.METRICS_SUM}")
        try:
            loop_thread.run(collector.start())
            for number, user in enumerate(_USERS):
                request = usage_request([usage_point(user, 1, T0 + number)])
                assert post_metrics(collector.http_port, request).status_code == 200
            loop_thread.run(collector.stop())
        finally:
            clickhouse.command(f"ATTACH TABLE {tables.METRICS_SUM}")

    return fill


def _records(segment: Path) -> list[tuple[int, bytes]]:
    """(offset, body) of each record of a segment."""
    offset, records = 0, []
    for body in scan_segment(segment):
        assert isinstance(body, bytes)
        records.append((offset, body))
        offset += HEADER.size + len(body)
    return records


def _user_of(body: bytes) -> str:
    request = decode_record(body).request
    assert request is not None
    attributes = ExportMetricsServiceRequest.FromString(request.body).resource_metrics[0]
    point = attributes.scope_metrics[0].metrics[0].sum.data_points[0]
    return next(kv.value.string_value for kv in point.attributes if kv.key == "user.id")


def _reported_damage(clickhouse: object) -> float:
    """The lost records the collector's own telemetry stored."""
    rows = clickhouse.undrained.query(
        f"SELECT sum(Value) FROM {tables.METRICS_SUM} WHERE ServiceName = 'usagemeter-collector'"
        " AND MetricName = 'usagemeter.collector.spool_records_damaged'"
    ).result_rows
    return float(rows[0][0] or 0)


def _largest_segment(spool_dir: Path) -> Path:
    return max(spool_dir.glob("*.seg"), key=lambda path: len(_records(path)))


def test_a_flipped_byte_loses_one_record_and_the_rest_of_the_segment_is_stored(
    fill_spool: Callable[[], None], spool_dir: Path, start_collector: Callable[..., Collector], clickhouse: object
) -> None:
    fill_spool()
    segment = _largest_segment(spool_dir)
    records = _records(segment)
    assert len(records) > _DAMAGED + 10
    offset, body = records[_DAMAGED]
    data = bytearray(segment.read_bytes())
    data[offset + HEADER.size + len(body) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    damaged = bytes(data[offset : offset + HEADER.size + len(body)])

    collector = start_collector(spool_dir=spool_dir, self_telemetry_interval_seconds=1)
    lost = _user_of(body)
    assert usage_by_user(clickhouse) == {user: 1.0 for user in _USERS if user != lost}
    assert collector.telemetry.spool_records_damaged == 1
    assert collector.status().reasons == ["1 acknowledged spool record lost to damaged bytes"]
    metrics = httpx.get(f"http://127.0.0.1:{collector.http_port}/metrics", timeout=10).text
    assert "usagemeter_collector_spool_records_damaged 1" in metrics.splitlines()
    assert wait_for(lambda: _reported_damage(clickhouse) == 1, 30)
    kept = list((spool_dir / QUARANTINE_DIR).iterdir())
    assert [path.name for path in kept] == [f"{segment.name}.{offset}.damaged"]
    assert kept[0].read_bytes() == damaged


def test_a_torn_tail_of_the_segment_written_last_is_not_reported_as_loss(
    fill_spool: Callable[[], None], spool_dir: Path, start_collector: Callable[..., Collector], clickhouse: object
) -> None:
    fill_spool()
    newest = max(spool_dir.glob("*.seg"))
    # What a crash in the middle of a write leaves: the segment never sealed, half a record at its end.
    newest.with_suffix(".hashes").unlink()
    with open(newest, "ab") as out:
        out.write(HEADER.pack(b"USM\xa5", 500, 0, 0)[:10])

    collector = start_collector(spool_dir=spool_dir)
    assert usage_by_user(clickhouse) == {user: 1.0 for user in _USERS}
    assert collector.telemetry.spool_records_damaged == 0
    assert not (spool_dir / QUARANTINE_DIR).exists()


def _legacy_segment(body: bytes) -> bytes:
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def test_segments_of_the_earlier_layout_are_inserted_and_old_files_made_private(
    fill_spool: Callable[[], None], spool_dir: Path, start_collector: Callable[..., Collector], clickhouse: object
) -> None:
    fill_spool()
    # Rewrite every segment as the earlier layout wrote it, world-readable as it was.
    for segment in spool_dir.glob("*.seg"):
        segment.write_bytes(b"".join(_legacy_segment(body) for _, body in _records(segment)))
        segment.chmod(0o644)
    spool_dir.chmod(0o755)

    start_collector(spool_dir=spool_dir)
    assert usage_by_user(clickhouse) == {user: 1.0 for user in _USERS}
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in spool_dir.iterdir()} == {0o600}


def test_every_spool_file_is_private_whatever_the_umask(
    fill_spool: Callable[[], None], spool_dir: Path, start_collector: Callable[..., Collector], clickhouse: object
) -> None:
    previous = os.umask(0)
    try:
        fill_spool()
        spooled = list(spool_dir.iterdir())
        assert {stat.S_IMODE(path.stat().st_mode) for path in spooled} == {0o600}
        assert any(path.suffix == ".seg" for path in spooled)
        segment = _largest_segment(spool_dir)
        offset, _ = _records(segment)[3]
        data = bytearray(segment.read_bytes())
        data[offset + HEADER.size + 1] ^= 0x01
        segment.write_bytes(bytes(data))
        collector = start_collector(spool_dir=spool_dir)
        cumulative = usage_request([usage_point("steady", 4, T0 + 5, start_ns=T0)], temporality=_CUMULATIVE)
        assert post_metrics(collector.http_port, cumulative).status_code == 200
        usage_by_user(clickhouse)
    finally:
        os.umask(previous)
    files = [path for path in spool_dir.rglob("*") if path.is_file()]
    names = {path.name.rsplit(".", 1)[-1] if "." in path.name else path.name for path in files}
    assert {LOCK_FILE, "hashes", "series", "damaged"} <= names
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o600 for path in files}
    directories = [spool_dir, spool_dir / QUARANTINE_DIR]
    assert [stat.S_IMODE(path.stat().st_mode) for path in directories] == [0o700, 0o700]
