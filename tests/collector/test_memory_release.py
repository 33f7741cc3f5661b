"""The writer gives the engine's freed memory back once it has caught up after a large insert, not in between."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from clickhouse_connect.driver.client import Client

from tests.collector.conftest import T0, post_metrics, usage_point, usage_request, wait_drained, wait_for
from usagemeter_collector import Collector
from usagemeter_collector._drain import writer as _writer


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> list[Client]:
    calls: list[Client] = []
    monkeypatch.setattr(_writer, "_release_memory", calls.append)
    return calls


def _post(collector: Collector, points: int) -> None:
    request = usage_request([usage_point(f"user-{n % 97}", 1.0, T0 + n) for n in range(points)])
    assert post_metrics(collector.http_port, request, timeout=60).status_code == 200


def test_memory_is_released_once_after_a_large_insert(
    start_collector: Callable[..., Collector], releases: list[Client]
) -> None:
    collector = start_collector()
    _post(collector, 20_000)  # about 1.6 MB: one large segment
    wait_drained()
    assert wait_for(lambda: len(releases) == 1)
    _post(collector, 10)
    wait_drained()
    time.sleep(0.5)  # the writer is idle again by now: a release would have happened
    assert len(releases) == 1, "a small insert leaves little to give back"


def test_the_engine_accepts_the_release(clickhouse: Client) -> None:
    from usagemeter_clickhouse import release_freed_memory

    release_freed_memory(clickhouse)
