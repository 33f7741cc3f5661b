"""The in-memory usage view answers exactly what ClickHouse answers, per slice and window, or nothing.

Its clock is driven (the ``clock`` parameter) across minute, day, week and month boundaries, and
every answer is compared with a direct ``sum(Quantity)`` over the minute rollup.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.api.api_support import distinct_insert, ns
from tests.api.conftest import AppFactory
from tests.conftest import free_port
from usagemeter_api.domain.periods import LIFETIME, Window, limit_window, period_window
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.schemas.plans import LimitWindow
from usagemeter_clickhouse import Client, connect, tables

FEATURE = "ai_tokens"
TOTAL = Slice(FEATURE)
GPT = Slice(FEATURE, "model", "gpt-4o")
MINI = Slice(FEATURE, "model", "mini")
SLICES = (TOTAL, GPT, MINI, Slice("chat_messages"))
ROLLING = (5, 90)
_DEADLINE_SECONDS = 60
_COLUMNS = ["ServiceName", "MetricName", "Attributes", "TimeUnix", "Value", "AggregationTemporality", "IsMonotonic"]
_KEY_COLUMNS = ["UserId", "FeatureKey", "DimensionKey", "DimensionValue"]
_INGEST_COLUMNS = ["IngestMinute", *_KEY_COLUMNS, "Minute", "Quantity"]
_DAY_COLUMNS = [*_KEY_COLUMNS, "ServiceName", "Day", "Quantity"]
_MONTH_COLUMNS = [*_KEY_COLUMNS, "Month", "Quantity"]

Point = tuple[str, Slice, datetime, float]

_DIRECT_SQL = f"""
SELECT toInt64(sum(Quantity) * 1000000) FROM {tables.USAGE_MINUTE}
WHERE UserId = {{user:String}} AND FeatureKey = {{feature:String}}
  AND DimensionKey = {{key:String}} AND DimensionValue = {{value:String}}
  AND Minute >= {{start:DateTime('UTC')}} AND Minute < {{end:DateTime('UTC')}}
"""


def _server_now(client: Client) -> datetime:
    moment: datetime = client.query("SELECT now('UTC')").result_rows[0][0]
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _allow_dimension(client: Client, attribute: str = "model") -> None:
    client.command(f"INSERT INTO {tables.USAGE_DIMENSIONS} VALUES ('{attribute}', true, 1)")


def _insert(client: Client, points: Sequence[Point], token: str | None = None) -> None:
    """Delta ``feature.usage`` points as the collector writes them; a slice's dimension becomes an attribute."""
    rows = []
    for user, part, at, value in points:
        attributes = {tables.USER_ATTRIBUTE: user, tables.FEATURE_ATTRIBUTE: part.feature_key}
        if part.dimension_key:
            attributes[part.dimension_key] = part.dimension_value
        rows.append(["web", tables.USAGE_METRIC, attributes, ns(at), value, 1, True])
    settings = distinct_insert() if token is None else {"insert_deduplication_token": token}
    client.insert(tables.METRICS_SUM, rows, column_names=_COLUMNS, settings=settings)


def _direct(client: Client, user: str, part: Slice, window: Window) -> int:
    """Micro-units of ``part`` in ``window`` summed straight from the minute rollup."""
    end = min(window.end, datetime(2105, 1, 1, tzinfo=UTC))
    parameters = {
        "user": user,
        "feature": part.feature_key,
        "key": part.dimension_key,
        "value": part.dimension_value,
        "start": window.start.replace(tzinfo=None),
        "end": end.replace(tzinfo=None),
    }
    return int(client.query(_DIRECT_SQL, parameters=parameters).result_rows[0][0])


def _windows(now: datetime, rolling: Sequence[int] = ROLLING) -> list[Window]:
    calendar = [limit_window(LimitWindow(kind), now) for kind in ("month", "week", "day", "lifetime")]
    return calendar + [limit_window(LimitWindow("rolling", minutes), now) for minutes in rolling]


def _wait_for(condition: Callable[[], bool], what: str | Callable[[], str]) -> None:
    """Poll ``condition``; past the deadline fail, saying ``what`` was awaited (worked out then, if a callable)."""
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.01)


def _caught_up(live: LiveUsage) -> None:
    """Wait for two whole cycles to start and end after this call: the view has seen everything stored before it."""
    refreshes = live.refreshes
    _wait_for(lambda: live.refreshes >= refreshes + 2, "two more refresh cycles")


def _assert_matches(live: LiveUsage, client: Client, users: Sequence[str], now: datetime) -> None:
    for window in _windows(now):
        for user in users:
            expected = [_direct(client, user, part, window) for part in SLICES]
            assert live.used(user, SLICES, window) == expected, (user, window, now)


class _Clock:
    """The view's idea of ClickHouse's clock: a moment the test sets."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self, client: Client) -> datetime:
        return self.moment


@pytest.fixture
def view(chdb_url: str, database: str, clickhouse: Client) -> Iterator[Callable[..., LiveUsage]]:
    """Start views on the test database; closed at the end."""
    started: list[LiveUsage] = []

    def start(**options: object) -> LiveUsage:
        live = LiveUsage(lambda: connect(chdb_url, database), refresh_seconds=0.01, **options)  # type: ignore[arg-type]
        started.append(live)
        live.start()
        _wait_for(lambda: live.ready, "the view to load")
        return live

    yield start
    for live in started:
        live.close()


def _around(moment: datetime) -> list[Point]:
    """Usage of two users in the minutes and days around ``moment``, fractional quantities included."""
    points: list[Point] = []
    offsets = [-timedelta(days=9), -timedelta(days=1), -timedelta(minutes=100), -timedelta(minutes=89)]
    offsets += [timedelta(minutes=minutes, seconds=7) for minutes in range(-7, 4)]
    for index, offset in enumerate(offsets):
        at = moment + offset
        points += [
            ("ann", GPT, at, 0.1 * (index + 1)),
            ("ann", MINI, at, 1000.000001),
            ("ann", Slice("chat_messages"), at, 1),
            ("ben", GPT, at, 3),
        ]
    return points


def test_every_window_matches_clickhouse_across_minute_day_week_and_month_boundaries(
    view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    _allow_dimension(clickhouse)
    now = _server_now(clickhouse)
    month_end = period_window("month", now + timedelta(days=2)).end
    week_end = period_window("week", month_end + timedelta(days=2)).end
    _insert(clickhouse, _around(month_end) + _around(week_end))
    steps = [month_end + timedelta(minutes=minutes, seconds=30) for minutes in (-3, -2, -1, 0, 1, 2, 5, 95)]
    steps += [week_end + timedelta(minutes=minutes, seconds=10) for minutes in (-1, 0, 1, 89, 90)]
    clock = _Clock(steps[0] - timedelta(hours=1))
    # The points lie in the engine's future: allow the scans for entering and leaving minutes to reach them.
    live = view(clock=clock, rolling_minutes=lambda: ROLLING, max_future_seconds=400 * 86_400)
    for step in steps:
        clock.moment = step
        _caught_up(live)
        _assert_matches(live, clickhouse, ["ann", "ben", "nobody"], step)
        assert live.used("ann", SLICES, period_window("day", step - timedelta(days=1))) is None
        assert live.used("ann", SLICES, limit_window(LimitWindow("rolling", 30), step)) is None


def test_while_windows_move_every_answer_is_exact_or_none(view: Callable[..., LiveUsage], clickhouse: Client) -> None:
    _allow_dimension(clickhouse)
    month_end = period_window("month", _server_now(clickhouse) + timedelta(days=2)).end
    _insert(clickhouse, _around(month_end))
    steps = [month_end + timedelta(minutes=minutes, seconds=30) for minutes in range(-3, 3)]
    windows = {window for step in steps for window in _windows(step)}
    expected = {window: [_direct(clickhouse, "ann", part, window) for part in SLICES] for window in windows}
    clock = _Clock(steps[0])
    live = view(clock=clock, rolling_minutes=lambda: ROLLING, max_future_seconds=400 * 86_400)
    wrong: list[object] = []
    answered: set[Window] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for window, figures in expected.items():
                got = live.used("ann", SLICES, window)
                if got is not None:
                    answered.add(window)
                    if got != figures:
                        wrong.append((window, got, figures))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for step in steps:
            clock.moment = step
            _caught_up(live)
    finally:
        done.set()
        reader.join()
    assert not wrong
    assert len(answered) >= len(steps) * len(ROLLING)  # each step's rolling windows were answered, not only refused


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


@pytest.fixture
def moving_view(view: Callable[..., LiveUsage], clickhouse: Client) -> Iterator[tuple[LiveUsage, _Clock, datetime]]:
    """A view whose clock starts 30 s into the engine's current minute and moves only when the test says."""
    start = _server_now(clickhouse).replace(second=30, microsecond=0)
    clock = _Clock(start)
    yield view(clock=clock, rolling_minutes=lambda: ROLLING), clock, start


def test_a_rolling_window_slides_exactly_over_usage_and_late_points(
    moving_view: tuple[LiveUsage, _Clock, datetime], clickhouse: Client
) -> None:
    live, clock, start = moving_view
    _allow_dimension(clickhouse)
    usage = [
        ("ann", part, start - timedelta(minutes=minutes), minutes + 0.5)
        for minutes in range(12)
        for part in (GPT, MINI)
    ]
    _insert(clickhouse, usage)
    _caught_up(live)
    _assert_matches(live, clickhouse, ["ann"], start)
    # Late points for minutes already inside (and already outside) the windows, ingested now.
    _insert(
        clickhouse, [("ann", GPT, start - timedelta(minutes=3), 0.25), ("ann", GPT, start - timedelta(minutes=8), 7)]
    )
    _insert(clickhouse, [("ann", GPT, start - timedelta(minutes=200), 11)])
    for step in range(14):
        clock.moment = start + timedelta(minutes=step)
        _caught_up(live)
        _assert_matches(live, clickhouse, ["ann"], clock.moment)
    assert live.watermark is not None and live.watermark > start  # the inserts are in the base now


def test_the_next_minutes_rolling_windows_are_answered_before_it_starts_and_the_last_ones_a_while_after(
    moving_view: tuple[LiveUsage, _Clock, datetime], clickhouse: Client
) -> None:
    live, clock, start = moving_view
    _insert(clickhouse, [("ann", TOTAL, start - timedelta(minutes=minutes), minutes + 1) for minutes in range(8)])
    minute = start.replace(second=0)
    clock.moment = minute + timedelta(seconds=55)  # the clock, ahead by the lead, is in the next minute
    _caught_up(live)
    for moment in (minute, minute + timedelta(minutes=1)):  # this minute's windows and the next one's
        for length in ROLLING:
            window = limit_window(LimitWindow("rolling", length), moment)
            assert live.used("ann", [TOTAL], window) == [_direct(clickhouse, "ann", TOTAL, window)], (moment, length)
    # Once the minute has turned its windows are the ones held since before it: answered at once.
    clock.moment = minute + timedelta(minutes=1, seconds=5)
    for length in ROLLING:
        window = limit_window(LimitWindow("rolling", length), clock.moment)
        assert live.used("ann", [TOTAL], window) == [_direct(clickhouse, "ann", TOTAL, window)], length


def test_points_ingested_during_refreshes_are_never_counted_twice_nor_lost(
    moving_view: tuple[LiveUsage, _Clock, datetime], clickhouse: Client
) -> None:
    live, clock, start = moving_view
    done = threading.Event()

    def keep_inserting() -> None:
        for batch in itertools.count():
            if done.is_set() or batch >= 200:
                return
            _insert(clickhouse, [("ann", TOTAL, start - timedelta(minutes=batch % 7), 1.5), ("ben", TOTAL, start, 2)])

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        for _ in range(30):
            before = live.used("ann", [TOTAL], period_window("month", start))
            after = _direct(clickhouse, "ann", TOTAL, period_window("month", start))
            assert before is not None and before[0] <= after  # never ahead of what is stored
    finally:
        done.set()
        writer.join()
    _caught_up(live)
    _assert_matches(live, clickhouse, ["ann", "ben"], start)
    # Three minutes on, every ingest minute has settled into the base: the totals stay the same.
    watermark = live.watermark
    clock.moment = start + timedelta(minutes=3)
    _caught_up(live)
    assert live.watermark is not None and watermark is not None and live.watermark > watermark
    _assert_matches(live, clickhouse, ["ann", "ben"], clock.moment)


def test_a_correction_counts_signed_in_every_window_its_moment_is_in(
    moving_view: tuple[LiveUsage, _Clock, datetime], clickhouse: Client
) -> None:
    live, clock, start = moving_view
    _allow_dimension(clickhouse)
    _insert(clickhouse, [("ann", GPT, start - timedelta(minutes=2), 10), ("ann", MINI, start, 4)])
    correction = (
        f"INSERT INTO {tables.USAGE_CORRECTIONS} (CorrectionId, UserId, FeatureKey, DimensionKey, DimensionValue,"
        " OccurredAt, Quantity, Reason, RecordedBy, RecordedAt)"
        " VALUES (generateUUIDv4(), 'ann', {feature:String}, 'model', 'gpt-4o', {at:DateTime64(3, 'UTC')},"
        " toDecimal128('-2.5', 6), 'double count', 'admin', now64(3))"
    )
    clickhouse.command(
        correction, parameters={"feature": FEATURE, "at": (start - timedelta(minutes=4)).replace(tzinfo=None)}
    )
    _caught_up(live)
    _assert_matches(live, clickhouse, ["ann"], start)
    assert live.used("ann", [GPT, TOTAL], limit_window(LimitWindow("rolling", 5), start)) == [7_500_000, 11_500_000]
    clock.moment = start + timedelta(minutes=1)  # the corrected minute leaves the 5-minute window
    _caught_up(live)
    _assert_matches(live, clickhouse, ["ann"], clock.moment)
    assert live.used("ann", [GPT], limit_window(LimitWindow("rolling", 5), clock.moment)) == [10_000_000]


def test_a_new_rolling_length_is_answered_once_loaded_and_a_dropped_one_no_longer(
    view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    now = _server_now(clickhouse).replace(second=30, microsecond=0)
    _insert(clickhouse, [("ann", TOTAL, now - timedelta(minutes=minutes), 2) for minutes in range(40)])
    lengths = [5]
    live = view(clock=_Clock(now), rolling_minutes=lambda: lengths)
    thirty = limit_window(LimitWindow("rolling", 30), now)
    five = limit_window(LimitWindow("rolling", 5), now)
    assert live.used("ann", [TOTAL], thirty) is None
    assert live.used("ann", [TOTAL], five) == [_direct(clickhouse, "ann", TOTAL, five)] == [10_000_000]
    lengths[:] = [30]
    _wait_for(lambda: live.used("ann", [TOTAL], thirty) is not None, "the 30-minute window to load")
    assert live.used("ann", [TOTAL], thirty) == [_direct(clickhouse, "ann", TOTAL, thirty)] == [60_000_000]
    _caught_up(live)
    assert live.used("ann", [TOTAL], five) is None
    assert live.used("ann", [TOTAL], period_window("month", now)) == [
        _direct(clickhouse, "ann", TOTAL, period_window("month", now))
    ]


def test_a_catalog_that_cannot_be_read_keeps_the_rolling_lengths_held(
    view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    now = _server_now(clickhouse).replace(second=30, microsecond=0)
    _insert(clickhouse, [("ann", TOTAL, now - timedelta(minutes=3), 2)])
    catalog: list[object] = [[5]]

    def lengths() -> list[int]:
        if isinstance(catalog[0], Exception):
            raise catalog[0]
        return catalog[0]  # type: ignore[return-value]

    live = view(clock=_Clock(now), rolling_minutes=lengths)
    five = limit_window(LimitWindow("rolling", 5), now)
    assert live.used("ann", [TOTAL], five) == [2_000_000]
    catalog[0] = RuntimeError("plan store away")
    _caught_up(live)
    assert live.used("ann", [TOTAL], five) == [2_000_000]


def test_a_total_beyond_int64_micro_units_is_answered_none_never_wrapped(
    moving_view: tuple[LiveUsage, _Clock, datetime], view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    live, _, start = moving_view
    _allow_dimension(clickhouse)
    month = period_window("month", start)
    # 9.2e12 units is the most an int64 of micro-units holds: 9 points of 1e12 fit, 10 do not.
    _insert(clickhouse, [("whale", TOTAL, start, 1e12)] * 9 + [("whale", GPT, start, 1)])
    _caught_up(live)
    assert live.used("whale", [TOTAL, GPT], month) == [9 * 10**18 + 10**6, 10**6]
    _insert(clickhouse, [("whale", TOTAL, start, 1e12)])  # the sum of the base and the newest part leaves int64
    _caught_up(live)
    assert live.used("whale", [TOTAL], month) is None
    assert live.used("whale", [GPT], month) == [10**6]
    fresh = view(clock=_Clock(start))  # loaded with the total already beyond int64: ClickHouse flags it
    assert fresh.used("whale", [TOTAL], LIFETIME) is None
    assert fresh.used("whale", [GPT], LIFETIME) == [10**6]


def test_the_view_loads_at_start_without_a_quota_read(make_api: AppFactory, clickhouse: Client) -> None:
    now = _server_now(clickhouse)
    # Stored before the API starts: a point whose insert is still under way while the view loads is
    # the next test's case.
    _insert(clickhouse, [("alice", TOTAL, now, 2)])
    api = make_api(quota_live_usage=True, quota_cache_seconds=0, now=now)
    live: LiveUsage = api.app.state.services.live_usage
    window = period_window("month", now)

    def where_the_view_stands() -> str:
        held = live.used("alice", [TOTAL], window)
        return (
            f"the view to load at start, with no quota read (ready {live.ready}, {live.refreshes} refreshes,"
            f" watermark {live.watermark}, holds {held}, ClickHouse has {_direct(clickhouse, 'alice', TOTAL, window)})"
        )

    _wait_for(lambda: live.used("alice", [TOTAL], window) == [2_000_000], where_the_view_stands)


@pytest.mark.xfail(
    strict=True,
    reason="known: the load reads the day and month rollups less usage_ingest's rows from the watermark on; a point"
    " whose insert has reached usage_ingest but not yet the rollups is subtracted without being counted",
)
def test_a_point_whose_insert_is_half_through_the_rollups_while_the_view_loads_counts_once(
    view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    now = _server_now(clickhouse)
    minute = now.replace(second=0, microsecond=0, tzinfo=None)
    keys = ["alice", FEATURE, "", ""]
    # The insert's pipeline as the load meets it: the ingest rollup written, the day and month ones not yet.
    clickhouse.insert(tables.USAGE_INGEST, [[minute, *keys, minute, Decimal(2)]], column_names=_INGEST_COLUMNS)
    live = view()
    clickhouse.insert(tables.USAGE_DAY, [[*keys, "web", minute.date(), Decimal(2)]], column_names=_DAY_COLUMNS)
    month = minute.date().replace(day=1)
    clickhouse.insert(tables.USAGE_MONTH, [[*keys, month, Decimal(2)]], column_names=_MONTH_COLUMNS)
    _caught_up(live)
    assert live.used("alice", [TOTAL], period_window("month", now)) == [2_000_000]


def test_retried_insert_counts_once(view: Callable[..., LiveUsage], clickhouse: Client) -> None:
    live = view()
    now = _server_now(clickhouse)
    window = period_window("month", now)
    token = uuid.uuid4().hex
    for _ in range(2):
        _insert(clickhouse, [("bob", TOTAL, now, 7)], token=token)
    _insert(clickhouse, [("bob", TOTAL, now, 1)])
    _wait_for(lambda: live.used("bob", [TOTAL], window) == [8_000_000], "the view to count the inserts")
    assert _direct(clickhouse, "bob", TOTAL, window) == 8_000_000
    _caught_up(live)
    assert live.used("bob", [TOTAL], window) == [8_000_000]


def test_usage_before_the_load_is_in_the_base(view: Callable[..., LiveUsage], clickhouse: Client) -> None:
    _allow_dimension(clickhouse)
    now = _server_now(clickhouse)
    _insert(clickhouse, _around(now))
    live = view()  # on ClickHouse's own clock
    _caught_up(live)
    for window in _windows(_server_now(clickhouse), rolling=()):
        for part in SLICES:
            assert live.used("ann", [part], window) == [_direct(clickhouse, "ann", part, window)], window
    assert live.used("ann", SLICES, Window(now - timedelta(days=400), now)) is None


def test_changes_are_tracked_while_a_reader_asks_and_an_untracked_gap_is_reported(
    view: Callable[..., LiveUsage], clickhouse: Client
) -> None:
    live = view()
    _caught_up(live)
    # Nobody asked yet: the refreshes so far did not track changes, so any user may have changed.
    users, mark = live.changed_users(0)
    assert users is None
    _caught_up(live)  # refreshes from now on track (the one running during the call may not)
    _, mark = live.changed_users(mark)
    _insert(clickhouse, [("dora", TOTAL, _server_now(clickhouse), 3)])
    found: set[str] = set()

    def seen_dora() -> bool:
        nonlocal mark
        users, mark = live.changed_users(mark)
        assert users is not None
        found.update(users)
        return "dora" in found

    _wait_for(seen_dora, "the view to report dora's change")
    assert found == {"dora"}
    _caught_up(live)
    assert live.changed_users(mark)[0] == set()
