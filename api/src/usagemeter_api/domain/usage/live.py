"""An exact, incremental in-memory view of every user's usage in the current periods.

The view holds, per (user, feature), the totals of three windows: the current UTC
calendar month, ISO week and day, as of ClickHouse's clock. It is loaded once from
``feature_usage_day`` and then kept current from ``feature_usage_ingest`` (usage per
ingest minute and event day), so a late-arriving point for an earlier day of the
period counts as soon as it is stored, and a point of an earlier period does not.

Exactness rests on two properties of the ingest rollup:

* every insert is stamped with the minute it ran in (``IngestMinute``), and it has
  committed well within ``settle`` (60 s) of that minute's end, so an ingest minute
  that ended ``settle`` ago no longer grows;
* the base is "everything ingested before minute M": the day rollup minus the ingest
  rows of minutes >= M, read in one query. Minutes >= M are then read from the ingest
  rollup only. M is a settled minute back, so no insert stamped before M is still in
  flight when the base is read.

Each refresh re-reads every minute >= the frozen watermark; settled minutes are folded
into the base and the watermark moves past them, the rest replace the previous
refresh's unsettled part. Nothing is counted twice and nothing is skipped.

While ClickHouse cannot be read the view keeps answering with the totals of its last
completed cycle, and :attr:`LiveUsage.freshness` says when that was and that it is behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.periods import Window, period_window
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.usage._pair_totals import PairTotals, pair_key
from usagemeter_clickhouse import Client, tables

__all__ = ["LiveUsage"]

logger = logging.getLogger(__name__)

_SETTLE = timedelta(seconds=60)
#: Totals not refreshed for this many refresh intervals (and at least the floor) are stale
#: even without a failed cycle: a cycle stuck on an unanswered query is not progress.
_FRESH_FOR_REFRESHES = 4
_FRESH_FOR_FLOOR_SECONDS = 5.0
#: While cycles fail (ClickHouse away or struggling), the wait between them doubles up to this: an
#: outage costs ClickHouse and the log one attempt per this long rather than several a second, and
#: the view still sees ClickHouse back within it.
_RETRY_MAX_SECONDS = 2.0

_NOW_SQL = "SELECT now('UTC')"

_PERIOD_SUMS = """
    sumIf(Uses, Day >= {month_start:Date} AND Day < {month_end:Date}),
    sumIf(Uses, Day >= {week_start:Date} AND Day < {week_end:Date}),
    sumIf(Uses, Day = {today:Date})
"""

_BASE_SQL = f"""
SELECT UserId, FeatureKey, {_PERIOD_SUMS}
FROM (
    SELECT UserId, FeatureKey, Day, Uses FROM {tables.USAGE_DAY} WHERE Day >= {{hold_start:Date}}
    UNION ALL
    SELECT UserId, FeatureKey, Day, -Uses FROM {tables.USAGE_INGEST}
    WHERE IngestMinute >= {{watermark:DateTime('UTC')}} AND Day >= {{hold_start:Date}}
)
GROUP BY UserId, FeatureKey
"""

# One row per pair for the settled minutes and one for the rest, so a burst of ingest
# costs the refreshes that re-read it one row per pair, not one per pair and minute.
_INGEST_SQL = f"""
SELECT IngestMinute < {{settled:DateTime('UTC')}} AS Settled, UserId, FeatureKey, {_PERIOD_SUMS}
FROM {tables.USAGE_INGEST}
WHERE IngestMinute >= {{watermark:DateTime('UTC')}} AND Day >= {{hold_start:Date}}
GROUP BY Settled, UserId, FeatureKey
"""

_KINDS = ("month", "week", "day")


@dataclass
class _State:
    """Totals of the periods around ``today``: frozen ones and the unsettled minutes' part."""

    today: date
    windows: tuple[Window, Window, Window]
    watermark: datetime
    base: PairTotals
    recent: PairTotals = field(default_factory=PairTotals)


class LiveUsage:
    """Period usage totals kept current in memory by a background thread.

    ``used`` answers None until the first load finished, and for windows other than
    the current month, week and day; callers then read ClickHouse.
    """

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        refresh_seconds: float = 0.25,
        clock: Callable[[Client], datetime] | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._refresh_seconds = refresh_seconds
        self._clock = clock or _server_now
        self._state: _State | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshes = 0
        self._freshness: Freshness | None = None
        self._fresh_for = max(_FRESH_FOR_FLOOR_SECONDS, _FRESH_FOR_REFRESHES * refresh_seconds)

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

    def used(self, user_id: str, feature_keys: Sequence[str], window: Window) -> dict[str, float] | None:
        """Uses per feature key of ``user_id`` in ``window``, or None when the view cannot answer it."""
        state = self._state
        if state is None:
            return None
        try:
            index = state.windows.index(window)
        except ValueError:
            return None
        with self._lock:
            return {key: _total(state, pair_key(user_id, key), index) for key in feature_keys}

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
            return self._refresh_seconds
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
        state = self._state
        if state is None or state.today != now.date():
            # The base lacks the minutes from the watermark on: read them before answering.
            loaded = _load(client, now)
            self._refresh(client, loaded, now)
            self._state = loaded
            logger.info("live usage totals loaded for %s: %d pairs", now.date(), len(loaded.base))
        else:
            self._refresh(client, state, now)

    def _refresh(self, client: Client, state: _State, now: datetime) -> None:
        settled = _minute(now - _SETTLE)
        parameters = {
            **_window_parameters(state.today, state.windows),
            "watermark": naive_utc(state.watermark),
            "settled": naive_utc(settled),
        }
        columns = client.query(_INGEST_SQL, parameters=parameters).result_columns
        is_settled = np.asarray(columns[0] if columns else [], dtype=bool)
        keys, sums = _pairs(columns[1:])
        frozen_keys = [key for key, done in zip(keys, is_settled, strict=True) if done]
        recent_keys = [key for key, done in zip(keys, is_settled, strict=True) if not done]
        # Rows for new pairs are added outside the lock: until the fold below they hold zero.
        frozen_rows = state.base.rows_for(frozen_keys)
        recent = PairTotals.of(recent_keys, sums[~is_settled])
        with self._lock:
            state.base.add_rows(frozen_rows, sums[is_settled])
            state.recent = recent
            state.watermark = max(state.watermark, settled)


def _load(client: Client, now: datetime) -> _State:
    today = now.date()
    windows = (period_window("month", now), period_window("week", now), period_window("day", now))
    # A settled minute back: every insert stamped before it has committed, so the base
    # lacks nothing of it, and every minute from it on is read from the ingest rollup.
    watermark = _minute(now - _SETTLE)
    parameters = {**_window_parameters(today, windows), "watermark": naive_utc(watermark)}
    keys, sums = _pairs(client.query(_BASE_SQL, parameters=parameters).result_columns)
    return _State(today=today, windows=windows, watermark=watermark, base=PairTotals.of(keys, sums))


def _pairs(columns: Sequence[Sequence[object]]) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Pair keys and their (month, week, day) sums from result columns user, feature, sums..."""
    if not columns or not columns[0]:
        return [], np.zeros((0, len(_KINDS)))
    users, features, *sums = columns
    keys = [pair_key(str(user), str(feature)) for user, feature in zip(users, features, strict=True)]
    return keys, np.column_stack([np.asarray(column, dtype=np.float64) for column in sums])


def _window_parameters(today: date, windows: tuple[Window, Window, Window]) -> dict[str, object]:
    parameters: dict[str, object] = {"today": today, "hold_start": min(window.start for window in windows).date()}
    for kind, window in zip(_KINDS, windows, strict=True):
        parameters[f"{kind}_start"] = window.start.date()
        parameters[f"{kind}_end"] = window.end.date()
    return parameters


def _total(state: _State, key: str, period: int) -> float:
    return state.base.total(key, period) + state.recent.total(key, period)


def _server_now(client: Client) -> datetime:
    moment: datetime = client.query(_NOW_SQL).result_rows[0][0]
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
