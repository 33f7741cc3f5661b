"""An exact, incremental in-memory view of every user's usage per slice in the windows quota checks ask most.

The view holds, per (user, feature, dimension key, dimension value) entry, int64 micro-unit totals
of the current UTC calendar month, ISO week and day, of lifetime, and of the rolling window of the
current minute for each rolling length the plan catalog names, all as of ClickHouse's clock. It is
loaded from the rollups in chunks, then kept current from ``usage_ingest`` (usage per ingest minute
and event minute), so a late point counts in exactly the windows its minute is in.

Exactness rests on two properties of the ingest rollup:

* every insert is stamped with the minute it ran in (``IngestMinute``), and it has committed well
  within ``settle`` (60 s) of that minute's end, so an ingest minute that ended ``settle`` ago no
  longer grows;
* the base is "everything ingested before minute W" (the watermark), per window; minutes >= W are
  read from the ingest rollup only. W is a settled minute back, so no insert stamped before W is
  still in flight when the base is read.

Each refresh re-reads every ingest minute >= W; settled ones are folded into the base and W moves
past them, the rest replace the previous refresh's unsettled part. When a column's window moves (a
minute, day, week or month turns) the base reads what the move changes, as ingested before W: the
minutes entering the window less those leaving it. A new rolling length is loaded the same way, from
nothing. Nothing is counted twice and nothing is skipped; a window the view does not hold at the
caller's moment (or holds only partly, mid-move) answers None, and the caller reads ClickHouse.

While ClickHouse cannot be read the view keeps answering with the totals of its last completed
cycle, and :attr:`LiveUsage.freshness` says when that was and that it is behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from usagemeter_api.domain.periods import Window, limit_window
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.usage._entries import EntryTable
from usagemeter_api.domain.usage._live_sql import Query, WindowMove, read_ingested, read_moves
from usagemeter_api.domain.usage._live_state import Delta, Recent, State
from usagemeter_api.domain.usage.slices import Slice
from usagemeter_api.schemas.plans import MAX_ROLLING_MINUTES, LimitWindow
from usagemeter_clickhouse import Client, release_freed_memory

__all__ = ["LiveUsage"]

logger = logging.getLogger(__name__)

_SETTLE = timedelta(seconds=60)
#: Beyond the senders' allowed skew, for clocks of collectors and ClickHouse that disagree a little.
_SKEW_MARGIN = timedelta(minutes=5)
#: Totals not refreshed for this many refresh intervals (and at least the floor) are stale
#: even without a failed cycle: a cycle stuck on an unanswered query is not progress.
_FRESH_FOR_REFRESHES = 4
_FRESH_FOR_FLOOR_SECONDS = 5.0
#: While cycles fail (ClickHouse away or struggling), the wait between them doubles up to this: an
#: outage costs ClickHouse and the log one attempt per this long rather than several a second, and
#: the view still sees ClickHouse back within it.
_RETRY_MAX_SECONDS = 2.0
_CALENDAR = ("month", "week", "day", "lifetime")
_ROLLING = "rolling:"
#: Each rolling length is held twice, for minutes of either parity, each column holding the window of
#: the latest such minute this far ahead of the clock: the next minute's window is ready before its
#: minute starts, and the current one stays answered until the minute after, so a check never meets
#: a window the view is still moving (nor a clock a little ahead of ClickHouse's).
_LEAD = timedelta(seconds=10)
_PARITIES = (0, 1)
_INT64 = (-(2**63), 2**63 - 1)

_NOW_SQL = "SELECT now64(6, 'UTC')"
#: How long ClickHouse's clock is carried forward on the monotonic clock before it is read again.
_CLOCK_READ_SECONDS = 30.0
#: Refreshes track which entries changed for this long after the last :meth:`LiveUsage.changed_users`:
#: without a reader (no webhook endpoint, or another replica detects) they skip that work.
_TRACK_CHANGES_SECONDS = 60.0


def _no_rolling() -> Iterable[int]:
    return ()


class LiveUsage:
    """Usage totals per slice kept current in memory by a background thread.

    ``used`` answers None until the first load finished, and for windows the view does not
    hold at that moment; callers then read ClickHouse. ``rolling_minutes`` names the rolling
    lengths to hold (read every cycle); ``max_future_seconds`` is the collectors' allowed clock
    skew (``USAGEMETER_MAX_FUTURE_SECONDS``), which bounds the scans for minutes leaving a window.
    """

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        refresh_seconds: float = 0.25,
        clock: Callable[[Client], datetime] | None = None,
        rolling_minutes: Callable[[], Iterable[int]] = _no_rolling,
        max_future_seconds: float = 300.0,
    ) -> None:
        self._client_factory = client_factory
        self._refresh_seconds = refresh_seconds
        self._clock = clock or _ServerClock()
        self._rolling_minutes = rolling_minutes
        self._skew = timedelta(seconds=max_future_seconds) + _SKEW_MARGIN
        self._state: State | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshes = 0
        self._freshness: Freshness | None = None
        self._fresh_for = max(_FRESH_FOR_FLOOR_SECONDS, _FRESH_FOR_REFRESHES * refresh_seconds)
        self._overflowed = 0
        #: When (monotonic) the view's clock reaches its next minute, as of the last cycle.
        self._minute_turns = 0.0
        #: Per row, the last refresh that changed its totals (for :meth:`changed_users`).
        self._changed_in = np.zeros(0, dtype=np.int64)
        #: Until when (monotonic) refreshes track changes, and the last refresh that did not.
        self._track_until = 0.0
        self._untracked = 0

    @property
    def ready(self) -> bool:
        """Whether the totals are loaded and being kept current."""
        return self._state is not None

    @property
    def refreshes(self) -> int:
        """Completed load and refresh cycles."""
        return self._refreshes

    @property
    def freshness(self) -> Freshness | None:
        """When the totals were last brought up to date from ClickHouse; None until loaded."""
        return self._freshness

    @property
    def watermark(self) -> datetime | None:
        """The ingest minute before which every contribution is frozen into the totals."""
        state = self._state
        return None if state is None else state.watermark

    @property
    def entries(self) -> int:
        """Entries (user and slice) held."""
        state = self._state
        return 0 if state is None else len(state.table)

    def start(self) -> None:
        """Start loading and refreshing in the background (once)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="usagemeter-live-usage", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def used(self, user_id: str, slices: Sequence[Slice], window: Window) -> list[int] | None:
        """Micro-units per slice of user_id in window, or None when the view cannot answer that window exactly."""
        return self.used_in(user_id, [(slices, window)])[0]

    def used_in(self, user_id: str, reads: Sequence[tuple[Sequence[Slice], Window]]) -> list[list[int] | None]:
        """:meth:`used` of each (slices, window) of ``reads``, as of one moment of the view (each slice found once)."""
        state = self._state
        if state is None:
            return [None] * len(reads)
        with self._lock:
            table, recent = state.table, state.recent
            rows: dict[Slice, int] = {}
            found: list[list[int] | None] = []
            for slices, window in reads:
                column = state.answering.get(window)
                found.append(None if column is None else _totals(table, recent, rows, user_id, slices, column))
            return found

    def changed_users(self, since: int) -> tuple[set[str] | None, int]:
        """The users whose totals changed in a refresh after the mark ``since``, and the mark to pass next.

        The first mark is 0. Refreshes track changes only while this is called (at least every
        ``_TRACK_CHANGES_SECONDS``): the users are None when a refresh after ``since`` did not, and any
        user held may have changed. One int64 per entry is kept for this.
        """
        self._track_until = time.monotonic() + _TRACK_CHANGES_SECONDS
        state = self._state
        if state is None:
            return set(), since
        with self._lock:
            if self._untracked > since:
                return None, self._refreshes
            rows = np.flatnonzero(self._changed_in[: len(state.table)] > since)
            return {state.table.user_of(int(row)) for row in rows}, self._refreshes

    def users_from(self, row: int, count: int) -> tuple[set[str], int]:
        """The users of the ``count`` entries from ``row`` on, and the row to go on from (0 past the last)."""
        state = self._state
        if state is None:
            return set(), 0
        end = min(row + count, len(state.table))
        users = {state.table.user_of(at) for at in range(row, end)}
        return users, 0 if end >= len(state.table) else end

    def _run(self) -> None:
        client: Client | None = None
        failures = 0
        try:
            while not self._stop.is_set():
                started = Freshness.now(self._fresh_for)
                try:
                    client = client or self._client_factory()
                    self._cycle(client)
                except Exception as exc:
                    self._fell_behind(exc, already=failures > 0)
                    failures += 1
                else:
                    if failures:
                        logger.info("live usage totals are current again")
                    failures = 0
                    self._freshness = started
                    self._refreshes += 1
                self._stop.wait(self._pause(failures))
        finally:
            if client is not None:
                client.close()

    def _pause(self, failures: int) -> float:
        """The wait before the next cycle: the refresh interval, doubling while cycles fail, up to a cap."""
        if failures == 0:
            # A rolling column moves as the clock, ahead by the lead, turns a minute: run a cycle then.
            return min(self._refresh_seconds, max(0.0, self._minute_turns - time.monotonic()))
        cap = max(_RETRY_MAX_SECONDS, self._refresh_seconds)
        return min(cap, self._refresh_seconds * 2 ** min(failures, 16))

    def _fell_behind(self, exc: Exception, *, already: bool) -> None:
        freshness = self._freshness
        if freshness is not None:
            self._freshness = freshness.falling_behind()
        if already:
            # One report per outage: a cycle fails every refresh interval until it ends.
            logger.debug("refreshing live usage totals failed again: %s", exc)
        elif freshness is None:
            logger.warning("loading live usage totals failed; quota reads go to ClickHouse until it loads: %s", exc)
        else:
            logger.warning("refreshing live usage totals failed; answering from the last totals: %s", exc, exc_info=exc)

    def _cycle(self, client: Client) -> None:
        now = self._clock(client)
        # The next cycle runs as the clock, ahead by the lead, turns a minute: a rolling column moves then.
        ahead = now + _LEAD
        self._minute_turns = time.monotonic() + 60 - ahead.second - ahead.microsecond / 1e6
        targets = self._targets(now)
        state = self._state
        if state is None:
            state = State(watermark=_minute(now - _SETTLE), table=EntryTable(0))
            self._relayout(state, targets)
            self._move(client, state, targets, loading=True)
            self._refresh(client, state, targets, now)
            self._state = state
            # The load's reads freed a few hundred bytes an entry in the embedded engine: give them back.
            release_freed_memory(client)
            logger.info("live usage totals loaded: %d entries, %d windows", len(state.table), len(targets))
            return
        if list(targets) != state.names:
            self._relayout(state, targets)
        self._move(client, state, targets, loading=False)
        self._refresh(client, state, targets, now)

    def _targets(self, now: datetime) -> dict[str, Window]:
        """The window each column holds at ``now``: the calendar ones, lifetime, then each rolling length."""
        targets = {kind: limit_window(LimitWindow(kind), now) for kind in _CALENDAR}  # type: ignore[arg-type]
        for minutes in self._lengths():
            for parity in _PARITIES:
                moment = _latest_minute_of_parity(now + _LEAD, parity)
                targets[f"{_ROLLING}{minutes}/{parity}"] = limit_window(LimitWindow("rolling", minutes), moment)
        return targets

    def _lengths(self) -> list[int]:
        try:
            lengths = {int(minutes) for minutes in self._rolling_minutes()}
        except Exception:
            logger.exception("reading the rolling window lengths failed; keeping those held")
            names = [] if self._state is None else self._state.names
            return sorted(
                {int(name.removeprefix(_ROLLING).split("/")[0]) for name in names if name.startswith(_ROLLING)}
            )
        return sorted(minutes for minutes in lengths if 1 <= minutes <= MAX_ROLLING_MINUTES)

    def _relayout(self, state: State, targets: dict[str, Window]) -> None:
        """Columns for ``targets``: held ones kept, new ones zero (holding no window yet), gone ones dropped."""
        relaid = state.relaid(list(targets))
        with self._lock:
            relaid.publish(state)

    def _move(self, client: Client, state: State, targets: dict[str, Window], *, loading: bool) -> None:
        """Bring every column's base to its target window, reading only what the move changes.

        A first load adds each block as it is read (nothing answers yet, and a failed load is
        dropped whole); later moves read everything first, so a failed read changes nothing.
        """
        moves = {
            column: WindowMove(state.windows[column], targets[name])
            for column, name in enumerate(state.names)
            if state.windows[column] != targets[name]
        }
        rolling = [column for column in moves if state.names[column].startswith(_ROLLING)]
        calendar = [column for column in moves if column not in rolling]
        groups = [(columns, self._skew if columns is rolling else None) for columns in (calendar, rolling) if columns]
        reads = ((columns, read_moves(client, state, [moves[c] for c in columns], skew)) for columns, skew in groups)
        if loading:
            for columns, deltas in reads:
                for delta in deltas:
                    state.add(delta, columns)
        else:
            read = [(columns, list(deltas)) for columns, deltas in reads]
            with self._lock:
                for column in moves:
                    state.answering.pop(state.windows[column], None)  # type: ignore[arg-type]
            for columns, delta_list in read:
                for delta in delta_list:
                    state.add(delta, columns)
        for column, move in moves.items():
            state.windows[column] = move.new

    def _refresh(self, client: Client, state: State, targets: dict[str, Window], now: datetime) -> None:
        """Fold the newly settled ingest minutes into the base, re-read the rest, and answer every window."""
        settled = _minute(now - _SETTLE)
        query = Query(state.watermark)
        read = read_ingested(client, state.table, query, settled)
        windows = [targets[name] for name in state.names]
        frozen, unsettled = read.in_windows(windows, settled=True), read.in_windows(windows, settled=False)
        recent = Recent.empty(len(state.names)).extended(unsettled.rows, unsettled.sums)
        state.table.overflowed.update(unsettled.rows[unsettled.overflow].tolist())
        tracking = time.monotonic() < self._track_until
        changed = _changed_rows(state.recent, frozen, recent) if tracking else None
        with self._lock:
            self._mark_changed(changed, len(state.table))
            state.add(frozen)
            state.recent = recent
            state.watermark = max(state.watermark, settled)
            state.answering = {window: column for column, window in enumerate(state.windows) if window is not None}
        self._report_overflow(state)

    def _mark_changed(self, rows: npt.NDArray[np.intp] | None, count: int) -> None:
        # The refresh completing now is numbered refreshes + 1 (counted once the cycle ends).
        if rows is None:
            self._untracked = self._refreshes + 1
            return
        if len(self._changed_in) < count:
            grown = np.zeros(max(count, len(self._changed_in) * 2), dtype=np.int64)
            grown[: len(self._changed_in)] = self._changed_in
            self._changed_in = grown
        self._changed_in[rows] = self._refreshes + 1

    def _report_overflow(self, state: State) -> None:
        count = len(state.table.overflowed)
        if count > self._overflowed:
            logger.warning(
                "%d usage totals left the int64 range of micro-units; their quota reads go to ClickHouse",
                count - self._overflowed,
            )
            self._overflowed = count


def _changed_rows(before: Recent, frozen: Delta, after: Recent) -> npt.NDArray[np.intp]:
    """The rows whose totals a refresh changes: what it freezes and its unsettled part, less the previous one."""
    held = np.fromiter(before.rows.keys(), dtype=np.intp, count=len(before.rows))
    at = np.fromiter(before.rows.values(), dtype=np.intp, count=len(before.rows))
    now_held = np.fromiter(after.rows.keys(), dtype=np.intp, count=len(after.rows))
    now_at = np.fromiter(after.rows.values(), dtype=np.intp, count=len(after.rows))
    rows = np.concatenate([frozen.rows.astype(np.intp), now_held, held])
    columns = after.sums.shape[1]
    old = before.sums[at] if before.sums.shape[1] == columns else np.zeros((len(held), columns), dtype=np.int64)
    sums = np.concatenate([frozen.sums.reshape(-1, columns), after.sums[now_at], -old])
    if not len(rows):
        return rows
    order = np.argsort(rows, kind="stable")
    rows, sums = rows[order], sums[order]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    moved = np.add.reduceat(sums, starts, axis=0).any(axis=1)
    return rows[starts][moved]


def _totals(
    table: EntryTable, recent: Recent, rows: dict[Slice, int], user_id: str, slices: Sequence[Slice], column: int
) -> list[int] | None:
    """Base and unsettled totals of each slice in ``column`` (rows found once, in ``rows``); None if one overflowed."""
    totals = []
    for part in slices:
        row = rows.get(part)
        if row is None:
            row = rows[part] = table.find(user_id, part)
        total = table.total(row, column)
        if total is None:
            return None
        at = recent.rows.get(row)
        if at is not None:
            total += int(recent.sums[at, column])
        if not _INT64[0] <= total <= _INT64[1]:
            return None
        totals.append(total)
    return totals


class _ServerClock:
    """ClickHouse's clock: read from it at most every :data:`_CLOCK_READ_SECONDS`, carried forward in between.

    A query every cycle only to learn the time was a fifth of the view's steady-state work, which
    shares the CPUs with the requests; the monotonic clock drifts by microseconds over the interval.
    """

    def __init__(self) -> None:
        self._read: tuple[datetime, float] | None = None

    def __call__(self, client: Client) -> datetime:
        read = self._read
        if read is None or time.monotonic() - read[1] >= _CLOCK_READ_SECONDS:
            self._read = read = _server_now(client), time.monotonic()
        moment, at = read
        return moment + timedelta(seconds=time.monotonic() - at)


def _server_now(client: Client) -> datetime:
    moment: datetime = client.query(_NOW_SQL).result_rows[0][0]
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _latest_minute_of_parity(moment: datetime, parity: int) -> datetime:
    """The latest minute at or before ``moment`` whose count since the epoch has ``parity``."""
    minute = _minute(moment)
    if int(minute.timestamp()) // 60 % 2 != parity:
        minute -= timedelta(minutes=1)
    return minute
