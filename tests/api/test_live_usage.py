"""The in-memory view of current-period usage answers exactly what ClickHouse answers."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.api_support import bearer, record_usage
from tests.api.conftest import AppFactory
from tests.conftest import free_port
from usagemeter_api.domain.periods import Window, period_window
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.queries import usage_totals
from usagemeter_clickhouse import Client, connect

FEATURE = "ai_content_generation"
_DEADLINE_SECONDS = 30


def _server_now(client: Client) -> datetime:
    moment: datetime = client.query("SELECT now('UTC')").result_rows[0][0]
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _clear_of_a_month_change(client: Client, span: timedelta) -> datetime:
    """The server's time once the next ``span`` stays within one month (waiting out a month change)."""
    now = _server_now(client)
    month_end = period_window("month", now).end
    if now + span >= month_end:
        time.sleep((month_end - now).total_seconds() + 1)
        now = _server_now(client)
    return now


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _clickhouse_used(client: Client, user: str, window: Window) -> float:
    return usage_totals(client, user, [FEATURE], window).get(FEATURE, 0.0)


def _live_used(live: LiveUsage, user: str, window: Window) -> float | None:
    totals = live.used(user, [FEATURE], window)
    return None if totals is None else totals[FEATURE]


def _period_points(user: str, now: datetime) -> list[tuple[str, str, datetime, float]]:
    month = period_window("month", now)
    return [
        (user, FEATURE, now, 3),
        (user, FEATURE, month.start, 5),  # late: the first day of the period, inserted now
        (user, FEATURE, month.start - timedelta(seconds=1), 100),  # the previous period: not counted
    ]


@pytest.fixture
def shifted_live(chdb_url: str, database: str, clickhouse: Client) -> Iterator[tuple[LiveUsage, list[timedelta]]]:
    """A started view whose idea of ClickHouse's clock can be moved forward."""
    offset = [timedelta()]
    live = LiveUsage(
        lambda: connect(chdb_url, database), refresh_seconds=0.02, clock=lambda client: _server_now(client) + offset[0]
    )
    live.start()
    _wait_for(lambda: live.ready, "the live view to load")
    yield live, offset
    live.close()


def test_the_view_loads_at_start_without_a_quota_read_then_answers_live(
    make_api: AppFactory, clickhouse: Client
) -> None:
    now = _server_now(clickhouse)
    api = make_api(quota_live_usage=True, quota_cache_seconds=0, now=now)
    live: LiveUsage = api.app.state.services.live_usage
    record_usage(clickhouse, [("alice", FEATURE, now, 2)])
    window = period_window("month", now)
    _wait_for(lambda: _live_used(live, "alice", window) == 2, "the live view to load at start, with no quota read")
    first = api.get(f"/api/v1/quotas/{FEATURE}/check", headers=bearer("alice"))
    assert first.status_code == 200, first.text
    assert first.json()["used"] == 2
    record_usage(clickhouse, _period_points("alice", now))
    _wait_for(lambda: _live_used(live, "alice", window) == 10, "the live view to count the new points")
    assert _clickhouse_used(clickhouse, "alice", window) == 10
    for path in (f"/api/v1/quotas/{FEATURE}/check", f"/api/v1/quotas/{FEATURE}"):
        assert api.get(path, headers=bearer("alice")).json()["used"] == 10
    listed = api.get("/api/v1/quotas", headers=bearer("alice")).json()["quotas"]
    assert {item["feature_key"]: item["used"] for item in listed}[FEATURE] == 10


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port on 127.0.0.1 that accepts connections and never answers (a ClickHouse server stuck); its connections."""
    accepted: list[socket.socket] = []
    done = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.05)

        def accept() -> None:
            while not done.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, name="silent-server", daemon=True)
        thread.start()
        yield listener.getsockname()[1], accepted
        done.set()
        thread.join()
    for connection in accepted:  # the clients waiting on them fail at once instead of timing out
        connection.close()


def test_the_app_starts_without_waiting_for_a_clickhouse_that_does_not_answer(
    make_api: AppFactory, database: str, silent_server: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = silent_server
    callers: list[str] = []

    def factory() -> Client:
        callers.append(threading.current_thread().name)
        return connect(f"http://u:p@127.0.0.1:{port}", database)

    api = make_api(quota_live_usage=True, client_factory=factory)
    live: LiveUsage = api.app.state.services.live_usage
    # The load is under way with no quota read, and hangs on ClickHouse's silence.
    _wait_for(
        lambda: "usagemeter-live-usage" in callers and len(accepted) >= len(callers), "the view to try ClickHouse"
    )
    assert api.get("/").status_code == 200  # serving meanwhile
    assert not live.ready


def test_while_clickhouse_is_away_the_view_retries_ever_less_often_up_to_a_cap(database: str) -> None:
    port = free_port()  # nothing listens: every attempt is refused
    attempts: list[float] = []

    def factory() -> Client:
        attempts.append(time.monotonic())
        return connect(f"http://u:p@127.0.0.1:{port}", database)

    live = LiveUsage(factory, refresh_seconds=0.05)
    try:
        live.start()
        _wait_for(lambda: len(attempts) >= 7, "seven attempts")
    finally:
        live.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # A wait is never shorter than asked: each gap is at least its doubled pause, capped at 2 s.
    for failures, gap in enumerate(gaps[:6], start=1):
        assert gap >= min(2.0, 0.05 * 2**failures), (failures, gaps)
    assert not live.ready


def test_retried_insert_counts_once(shifted_live: tuple[LiveUsage, list[timedelta]], clickhouse: Client) -> None:
    live, _ = shifted_live
    now = _server_now(clickhouse)
    window = period_window("month", now)
    token = uuid.uuid4().hex
    for _ in range(2):
        record_usage(clickhouse, [("bob", FEATURE, now, 7)], token=token)
    record_usage(clickhouse, [("bob", FEATURE, now, 1)])
    _wait_for(lambda: _live_used(live, "bob", window) == 8, "the live view to count the inserts")
    assert _clickhouse_used(clickhouse, "bob", window) == 8
    refreshes = live.refreshes
    _wait_for(lambda: live.refreshes >= refreshes + 3, "more refresh cycles")
    assert _live_used(live, "bob", window) == 8


def test_settled_minutes_fold_into_the_base_once(
    shifted_live: tuple[LiveUsage, list[timedelta]], clickhouse: Client
) -> None:
    live, offset = shifted_live
    now = _clear_of_a_month_change(clickhouse, timedelta(minutes=4))
    window = period_window("month", now)
    record_usage(clickhouse, _period_points("carol", now))
    _wait_for(lambda: _live_used(live, "carol", window) == 8, "the live view to count the new points")
    watermark = live.watermark
    assert watermark is not None
    # Three minutes on, the minutes just read have settled: they move into the base.
    offset[0] = timedelta(minutes=3)
    _wait_for(lambda: (live.watermark or watermark) > watermark, "the view to freeze the settled minutes")
    refreshes = live.refreshes
    _wait_for(lambda: live.refreshes >= refreshes + 2, "more refresh cycles")
    assert _live_used(live, "carol", window) == _clickhouse_used(clickhouse, "carol", window) == 8


def test_usage_before_the_load_is_in_the_base(chdb_url: str, database: str, clickhouse: Client) -> None:
    now = _server_now(clickhouse)
    record_usage(clickhouse, _period_points("dave", now))
    live = LiveUsage(lambda: connect(chdb_url, database), refresh_seconds=0.02)
    try:
        live.start()
        _wait_for(lambda: live.ready, "the live view to load")
        for kind in ("month", "week", "day"):
            window = period_window(kind, now)
            assert _live_used(live, "dave", window) == _clickhouse_used(clickhouse, "dave", window)
        assert _live_used(live, "dave", Window(now - timedelta(days=400), now)) is None
    finally:
        live.close()
