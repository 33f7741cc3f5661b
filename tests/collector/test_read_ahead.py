"""The writer's reader: sealed segments in order, one read ahead at most, none skipped when a read fails."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from usagemeter_collector._drain import read_ahead as _read_ahead
from usagemeter_collector._drain.read_ahead import SegmentContents, SegmentReader, read_segment
from usagemeter_collector._spool.records import MetricsRequest, encode_request_record
from usagemeter_collector._spool.spool import Spool, SpoolLimits
from usagemeter_collector._telemetry import Telemetry

# Every record is larger than a segment, so each append seals a segment of its own.
_LIMITS = SpoolLimits(max_bytes=1 << 30, segment_bytes=1024, seal_after_seconds=60, dedup_window_seconds=600)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool", _LIMITS, Telemetry())
    spool.open()
    yield spool
    spool.close()


def _append(spool: Spool, number: int) -> None:
    digest = hashlib.sha256(str(number).encode()).digest()
    request = MetricsRequest(bytes([number]) * 2000, ("sum",), number)
    assert spool.append(encode_request_record(digest, [], request), digest, []).result(5)


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the segments the reader read, in order."""
    names: list[str] = []

    def counted(spool: Spool, name: str) -> SegmentContents:
        names.append(name)
        return read_segment(spool, name)

    monkeypatch.setattr(_read_ahead, "read_segment", counted)
    return names


@contextlib.contextmanager
def _reader(spool: Spool) -> Iterator[SegmentReader]:
    reader = SegmentReader(spool)
    reader.start()
    yield reader
    reader.stop()


def test_segments_come_oldest_first_with_one_read_ahead(spool: Spool, reads: list[str]) -> None:
    for number in (1, 2, 3):
        _append(spool, number)
    with _reader(spool) as reader:
        _wait_for(lambda: len(reads) == 1)
        time.sleep(0.3)
        assert len(reads) == 1, "nothing is read ahead of a segment the writer has not taken"
        first = reader.next(timeout=5)
        assert first is not None and [request.points for request in first.requests] == [1]
        _wait_for(lambda: len(reads) == 2)
        time.sleep(0.3)
        assert len(reads) == 2, "one segment is read ahead, no more"
        spool.release(first.name)
        rest = [reader.next(timeout=5), reader.next(timeout=5)]
        assert [segment.requests[0].points for segment in rest if segment is not None] == [2, 3]
        assert reads == sorted(reads)


def test_a_segment_sealed_later_is_read_when_it_comes(spool: Spool) -> None:
    with _reader(spool) as reader:
        assert reader.next(timeout=0.2) is None
        _append(spool, 7)
        segment = reader.next(timeout=5)
        assert segment is not None and segment.requests[0].body == bytes([7]) * 2000


def test_a_segment_that_cannot_be_read_is_read_again_not_skipped(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [OSError("disk hiccup")]

    def flaky(spool: Spool, name: str) -> SegmentContents:
        if failures:
            raise failures.pop()
        return read_segment(spool, name)

    monkeypatch.setattr(_read_ahead, "read_segment", flaky)
    _append(spool, 1)
    _append(spool, 2)
    with _reader(spool) as reader:
        first = reader.next(timeout=5)
        assert first is not None and first.requests[0].points == 1
