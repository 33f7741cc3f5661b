"""A damaged state file (snapshot or sidecar) never blocks start: it is quarantined, logged and counted."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgpack
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tests.collector.conftest import T0, post_metrics, usage_by_user, usage_point, usage_request, wait_for
from tests.conftest import free_port
from usagemeter_collector._spool.segments import HASHES_SUFFIX, QUARANTINE_DIR
from usagemeter_collector._spool.state import SERIES_SUFFIX, SNAPSHOT_FILE

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_S = 10**9


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _random(_: bytes) -> bytes:
    return random.Random(7).randbytes(300)


def _wrong_shape(_: bytes) -> bytes:
    return bytes(msgpack.packb({"covered": "x", "entries": 3}))


def _wrong_types(_: bytes) -> bytes:
    # The shape of a state file, with a text where a time or a digest belongs.
    return bytes(msgpack.packb(["seg", [[["svc", "alice"], ["soon", 1, 2.0]]]]))


def _wrong_hash_types(_: bytes) -> bytes:
    return bytes(msgpack.packb([[b"short", "later"]]))


_DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "truncated": _truncated,
    "random-bytes": _random,
    "wrong-shape": _wrong_shape,
    "wrong-types": _wrong_types,
}

#: What alice's second cumulative point (5, then 8) adds up to once each file is lost.
_TOTAL_AFTER_LOSS = {"snapshot": 8.0, "series-sidecar": 13.0, "hashes-sidecar": 8.0}


def _send_alice(collector, value: float, seconds: int) -> None:
    point = usage_point("alice", value, T0 + seconds * _S, start_ns=T0)
    response = post_metrics(collector.http_port, usage_request([point], temporality=_CUMULATIVE))
    assert response.status_code == 200, response.text


def _state_file(spool: Path, target: str) -> Path:
    """The file of ``target`` left by a run; the snapshot is made from a sidecar (the same format)."""
    (series,) = spool.glob("*" + SERIES_SUFFIX)
    if target == "snapshot":
        shutil.copy(series, spool / SNAPSHOT_FILE)
        return spool / SNAPSHOT_FILE
    if target == "series-sidecar":
        return series
    (hashes,) = spool.glob("*" + HASHES_SUFFIX)
    return hashes


def _assert_quarantined(spool: Path, name: str) -> None:
    moved = spool / QUARANTINE_DIR / name
    assert moved.exists()
    assert not (spool / name).exists()
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", sorted(_DAMAGES))
@pytest.mark.parametrize("target", sorted(_TOTAL_AFTER_LOSS))
def test_damaged_state_file_is_quarantined_and_the_collector_starts(
    start_collector, clickhouse, loop_thread, caplog, target: str, damage: str
):
    first = start_collector()
    _send_alice(first, 5, 10)
    loop_thread.run(first.stop())
    spool = first.spool.directory
    path = _state_file(spool, target)
    corrupt = _wrong_hash_types if (target, damage) == ("hashes-sidecar", "wrong-types") else _DAMAGES[damage]
    path.write_bytes(corrupt(path.read_bytes()))

    with caplog.at_level(logging.ERROR, logger="usagemeter_collector"):
        second = start_collector()
    assert second.telemetry.state_files_quarantined == 1
    _assert_quarantined(spool, path.name)
    (line,) = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert path.name in line and QUARANTINE_DIR in line
    assert "restart" in line or "lost" in line
    _send_alice(second, 8, 20)
    assert usage_by_user(clickhouse) == {"alice": _TOTAL_AFTER_LOSS[target]}


def test_snapshot_of_the_earlier_messagepack_format_is_still_read(start_collector, clickhouse, loop_thread):
    first = start_collector()
    _send_alice(first, 5, 10)
    loop_thread.run(first.stop())
    spool = first.spool.directory
    for sidecar in spool.glob("*" + SERIES_SUFFIX):
        sidecar.unlink()
    # The series key as the conversion builds it: (resource, scope name, scope version, metric), attributes.
    series = ((("service.name", "collector-test"),), "tests", "", "feature.usage")
    key = (series, (("feature.key", "chat"), ("user.id", "alice")))
    legacy = msgpack.packb(("", [(key, (T0, T0 + 10 * _S, 5.0))]), use_bin_type=True)
    (spool / SNAPSHOT_FILE).write_bytes(legacy)
    second = start_collector()
    assert second.telemetry.state_files_quarantined == 0
    _send_alice(second, 8, 20)
    assert usage_by_user(clickhouse) == {"alice": 8.0}


def test_usagemeter_collector_process_starts_with_garbage_state_files(data_dir: Path) -> None:
    spool = data_dir / "spool"
    env = os.environ | {"USAGEMETER_SPOOL_DIR": str(spool)}
    migrate = [sys.executable, "-m", "usagemeter", "migrate", "--data-dir", str(data_dir)]
    assert subprocess.run(migrate, env=env, capture_output=True, timeout=120).returncode == 0
    spool.mkdir()
    (spool / SNAPSHOT_FILE).write_bytes(b"\xc1 not a snapshot")
    hashes = spool / f"{time.time_ns():020d}-0123456789ab{HASHES_SUFFIX}"
    hashes.write_bytes(random.Random(3).randbytes(64))
    http_port = free_port()
    args = ["--data-dir", str(data_dir), "--grpc-port", str(free_port()), "--http-port", str(http_port)]
    log = data_dir / "collector.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "usagemeter", "collector", *args], env=env, stderr=stderr)
    try:
        exposition = wait_for(lambda: _exposition(http_port, process), 90)
        assert exposition, f"collector did not start: {log.read_text()}"
        assert "usagemeter_collector_state_files_quarantined 2" in exposition
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    _assert_quarantined(spool, SNAPSHOT_FILE)
    _assert_quarantined(spool, hashes.name)
    text = log.read_text()
    assert "Traceback" not in text
    assert f"spool state file {SNAPSHOT_FILE} is damaged" in text
    assert f"spool state file {hashes.name} is damaged" in text


def _exposition(port: int, process: subprocess.Popen[bytes]) -> str:
    assert process.poll() is None, f"collector exited with {process.returncode}"
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""
