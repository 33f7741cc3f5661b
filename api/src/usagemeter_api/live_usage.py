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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from usagemeter_api.periods import Window, period_window
from usagemeter_clickhouse import Client, tables

__all__ = ["LiveUsage"]

logger = logging.getLogger(__name__)

_SETTLE = timedelta(seconds=60)

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

Totals = dict[tuple[str, str], list[float]]
_KINDS = ("month", "week", "day")


@dataclass
class _State:
    """Totals of the periods around ``today``: frozen ones and the unsettled minutes' part."""

    today: date
    windows: tuple[Window, Window, Window]
    watermark: datetime
    base: Totals
    recent: Totals = field(default_factory=dict)


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

    @property
    def ready(self) -> bool:
        """Whether the totals are loaded and being kept current."""
        return self._state is not None

    @property
    def refreshes(self) -> int:
        """Completed load and refresh cycles."""
        return self._refreshes

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
            self.start()
            return None
        try:
            index = state.windows.index(window)
        except ValueError:
            return None
        with self._lock:
            return {key: _total(state, (user_id, key), index) for key in feature_keys}

    def _run(self) -> None:
        client = self._client_factory()
        try:
            while not self._stop.is_set():
                try:
                    self._cycle(client)
                    self._refreshes += 1
                except Exception:
                    logger.exception("refreshing live usage totals failed; retrying")
                self._stop.wait(self._refresh_seconds)
        finally:
            client.close()

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
        frozen: Totals = {}
        recent: Totals = {}
        parameters = {
            **_window_parameters(state.today, state.windows),
            "watermark": _naive(state.watermark),
            "settled": _naive(settled),
        }
        for is_settled, user_id, feature_key, *sums in client.query(_INGEST_SQL, parameters=parameters).result_rows:
            target = frozen if is_settled else recent
            _add(target, (str(user_id), str(feature_key)), [float(value) for value in sums])
        with self._lock:
            for key, sums in frozen.items():
                _add(state.base, key, sums)
            state.recent = recent
            state.watermark = max(state.watermark, settled)


def _load(client: Client, now: datetime) -> _State:
    today = now.date()
    windows = (period_window("month", now), period_window("week", now), period_window("day", now))
    # A settled minute back: every insert stamped before it has committed, so the base
    # lacks nothing of it, and every minute from it on is read from the ingest rollup.
    watermark = _minute(now - _SETTLE)
    parameters = {**_window_parameters(today, windows), "watermark": _naive(watermark)}
    base: Totals = {}
    for user_id, feature_key, *sums in client.query(_BASE_SQL, parameters=parameters).result_rows:
        base[(str(user_id), str(feature_key))] = [float(value) for value in sums]
    return _State(today=today, windows=windows, watermark=watermark, base=base)


def _window_parameters(today: date, windows: tuple[Window, Window, Window]) -> dict[str, object]:
    parameters: dict[str, object] = {"today": today, "hold_start": min(window.start for window in windows).date()}
    for kind, window in zip(_KINDS, windows, strict=True):
        parameters[f"{kind}_start"] = window.start.date()
        parameters[f"{kind}_end"] = window.end.date()
    return parameters


def _total(state: _State, key: tuple[str, str], index: int) -> float:
    base = state.base.get(key)
    recent = state.recent.get(key)
    return (base[index] if base else 0.0) + (recent[index] if recent else 0.0)


def _add(totals: Totals, key: tuple[str, str], sums: list[float]) -> None:
    current = totals.get(key)
    if current is None:
        totals[key] = list(sums)
    else:
        for index, value in enumerate(sums):
            current[index] += value


def _server_now(client: Client) -> datetime:
    moment: datetime = client.query(_NOW_SQL).result_rows[0][0]
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
