"""Threshold detection: after each refresh of the in-memory view, the users whose usage moved are evaluated
against their plan's thresholds, and each crossing not yet recorded becomes an event in the outbox.

The replica that leads (:mod:`.replicas`) detects; the others wait. Besides the users whose totals changed,
passes evaluate every user held, a slice each (a sweep from the start, then every ten minutes), so crossings
made while no API ran, and those a lowered limit or an expired grant makes, are found too. Every
``reset_interval_seconds`` it also looks for crossed periods that ended, for quota.reset.

No flapping: a calendar, cycle or lifetime threshold is announced once per period (its id names the
period). A rolling window has no period: a threshold of one is announced at most once per window length
(its id names the minute it was found), however often usage goes back and forth across it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from usagemeter_api.core.clock import system_clock
from usagemeter_api.domain.grants import Grant, GrantStore
from usagemeter_api.domain.plans import PlanCatalog
from usagemeter_api.domain.quota import LimitFigures
from usagemeter_api.domain.quota_answers import read_plan_limits
from usagemeter_api.domain.quota_windows import FeatureLayout
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_api.domain.usage.live import LiveUsage
from usagemeter_api.domain.usage.period import PeriodUsage
from usagemeter_api.domain.webhooks.endpoints import EndpointStore
from usagemeter_api.domain.webhooks.events import (
    WebhookEvent,
    crossings,
    projection,
    reset_event,
    threshold_event,
)
from usagemeter_api.domain.webhooks.outbox import EndedGroup, ended_groups, groups_since, known_events, record_events
from usagemeter_api.domain.webhooks.replicas import Membership
from usagemeter_clickhouse import Client, tables

__all__ = ["ThresholdDetector"]

logger = logging.getLogger(__name__)

#: Users evaluated per pass at most: the rest of a burst waits for the next passes.
_USERS_PER_PASS = 2000
#: Event ids and rolling groups remembered as recorded, so a crossing that stays is not looked up again.
_REMEMBERED = 100_000
#: How far back ended periods are looked for (an API down longer sends no quota.reset for them).
_RESET_LOOKBACK = timedelta(days=7)
_RESETS_PER_PASS = 500
#: How often every user held is evaluated again (a slice per pass), changed or not.
_SWEEP_EVERY_SECONDS = 600.0
#: Without the in-memory view, the users with usage ingested this long ago or since are evaluated.
_RECENT_SQL = (
    f"SELECT DISTINCT UserId FROM {tables.USAGE_INGEST}"
    " WHERE IngestMinute >= toStartOfMinute(now('UTC')) - INTERVAL 1 MINUTE LIMIT {limit:UInt32}"
)

Limits = list[tuple[FeatureLayout, list[LimitFigures]]]


class ThresholdDetector:
    """Finds threshold crossings and records their events; ``recorded`` is called when it recorded any."""

    def __init__(
        self,
        usage: PeriodUsage,
        live: LiveUsage | None,
        catalog: Callable[[], PlanCatalog],
        grants: GrantStore,
        endpoints: EndpointStore,
        membership: Membership,
        clock: Callable[[], datetime],
        *,
        interval_seconds: float = 0.5,
        sweep_users: int = 200,
        reset_interval_seconds: float = 10.0,
        recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self._usage, self._live, self._catalog, self._grants = usage, live, catalog, grants
        self._endpoints, self._membership, self._clock = endpoints, membership, clock
        self._sweep_users, self._reset_every = sweep_users, reset_interval_seconds
        self._recorded = recorded
        self._mark = 0
        self._sweep_row = 0
        self._sweep_began = -_SWEEP_EVERY_SECONDS
        self._waiting: set[str] = set()
        self._remembered: OrderedDict[str, None] = OrderedDict()
        #: Rolling groups announced lately, with the moment until which they stay quiet.
        self._quiet: OrderedDict[str, datetime] = OrderedDict()
        self._last_resets: datetime | None = None
        #: The background thread's event loop for :meth:`detect` (made on its first pass).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background = BackgroundRefresh(
            "webhook detector", self._pass, interval_seconds, task="detecting webhook events", meanwhile="trying again"
        )

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Detect in a background thread from now on (once)."""
        self._background.start(client_factory)

    def close(self) -> None:
        """Stop detecting."""
        self._background.close()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()

    def _pass(self, client: Client) -> None:
        rank = self._membership.rank()
        # Nothing to detect for while no endpoint subscribes (and no reset is owed to anyone).
        if rank is None or not rank.leads or not self._endpoints.subscriptions():
            return
        self._loop = self._loop or asyncio.new_event_loop()
        self._loop.run_until_complete(self.detect(client))

    async def detect(self, client: Client) -> list[WebhookEvent]:
        """One pass: evaluate the users due, record the events not recorded yet, and return them."""
        now = self._clock()
        users = self._users_due(client)
        catalog = self._catalog()
        events: list[WebhookEvent] = []
        for user_id in users:
            try:
                limits = await self._limits(catalog, user_id, now)
            except Exception as exc:
                logger.debug("evaluating %r for webhooks failed; again next pass: %s", user_id, exc)
                self._waiting.add(user_id)
                continue
            events.extend(self._crossed(user_id, limits, now))
        if self._last_resets is None or now - self._last_resets >= timedelta(seconds=self._reset_every):
            events.extend(await self._resets(client, catalog, now))
            self._last_resets = now
        fresh = self._unrecorded(client, events, now)
        # Due by the wall clock, which the sender schedules by (the app's clock may be set elsewhere).
        record_events(client, fresh, self._endpoints.subscriptions(), system_clock())
        self._remember(event.event_id for event in fresh)
        self._quiet_until({event.group: now for event in fresh if event.window_kind == "rolling"}, fresh)
        if fresh:
            logger.info("%d webhook events recorded", len(fresh))
            self._recorded()
        return fresh

    def _users_due(self, client: Client) -> list[str]:
        """Users whose usage moved since the last pass, those a failed pass left, and the sweep's next slice."""
        live = self._live
        if live is None:
            rows = client.query(_RECENT_SQL, parameters={"limit": _USERS_PER_PASS}).result_rows
            changed, swept = {str(row[0]) for row in rows}, set[str]()
        else:
            tracked, self._mark = live.changed_users(self._mark)
            if tracked is None:  # the view did not track what changed lately: every user held is due
                self._sweep_row, self._sweep_began = 0, -_SWEEP_EVERY_SECONDS
            changed, swept = tracked or set(), self._swept(live)
        due = sorted(self._waiting | changed)
        self._waiting = set(due[_USERS_PER_PASS:])
        return [*due[:_USERS_PER_PASS], *(swept - set(due))]

    def _swept(self, live: LiveUsage) -> set[str]:
        """The sweep's next slice of users; a sweep done, the next starts ``_SWEEP_EVERY`` after it began."""
        if self._sweep_row == 0:
            if time.monotonic() - self._sweep_began < _SWEEP_EVERY_SECONDS:
                return set()
            self._sweep_began = time.monotonic()
        users, self._sweep_row = live.users_from(self._sweep_row, self._sweep_users)
        return users

    async def _limits(self, catalog: PlanCatalog, user_id: str, now: datetime) -> Limits:
        _, plan = catalog.plan_for(user_id)
        grants_of: dict[str, Sequence[Grant]] = {key: self._grants.active(user_id, key, now) for key in plan.features}
        anchor = catalog.assigned_at.get(user_id)
        return await read_plan_limits(self._usage, user_id, plan, anchor, now, grants_of)

    def _crossed(self, user_id: str, limits: Limits, now: datetime) -> list[WebhookEvent]:
        # Forecasts only for the endpoints that asked for them: the projection is the one event not a crossing.
        projecting = any(kind == "quota.projected_to_exceed" for _, kind in self._endpoints.subscriptions())
        events = []
        for layout, figures in limits:
            thresholds = layout.feature.threshold_levels()
            for limit in figures:
                found = crossings(limit, thresholds)
                ahead = projection(limit, now) if projecting else None
                for crossing in found if ahead is None else [*found, ahead]:
                    rolling = limit.rule.window.kind == "rolling"
                    # A rolling window has no period: the minute it was found stands for one.
                    key = now.replace(second=0, microsecond=0) if rolling else None
                    events.append(threshold_event(crossing, user_id, layout.feature_key, now, key))
        return events

    async def _resets(self, client: Client, catalog: PlanCatalog, now: datetime) -> list[WebhookEvent]:
        """quota.reset for each crossed limit whose period ended, with its figures in the period now running."""
        events = []
        by_user: dict[str, list[EndedGroup]] = {}
        for group in ended_groups(client, now, now - _RESET_LOOKBACK, _RESETS_PER_PASS):
            by_user.setdefault(group.user_id, []).append(group)
        for user_id, groups in by_user.items():
            try:
                limits = await self._limits(catalog, user_id, now)
            except Exception as exc:
                logger.debug("reading %r for quota.reset failed; again later: %s", user_id, exc)
                continue
            for group in groups:
                current = _limit_of(limits, group)
                if current is not None:
                    events.append(reset_event(current, user_id, group.feature_key, group.period_start, now))
        return events

    def _unrecorded(self, client: Client, events: Sequence[WebhookEvent], now: datetime) -> list[WebhookEvent]:
        """``events`` less those recorded before, and for rolling windows those of a group announced lately."""
        unique = list({event.event_id: event for event in events}.values())
        calendar = [e for e in unique if e.window_kind != "rolling" and e.event_id not in self._remembered]
        recorded = known_events(client, [event.event_id for event in calendar])
        self._remember(recorded)
        rolling = [e for e in unique if e.window_kind == "rolling" and self._quiet.get(e.group, now) <= now]
        lately = self._announced_lately(client, rolling, now)
        fresh = [event for event in calendar if event.event_id not in recorded]
        return fresh + [event for event in rolling if event.group not in lately]

    def _announced_lately(self, client: Client, events: Sequence[WebhookEvent], now: datetime) -> set[str]:
        """The groups of ``events`` (rolling windows) announced within their window's length."""
        lately: dict[str, datetime] = {}
        for length in {event.period_end - event.period_start for event in events}:
            groups = [event.group for event in events if event.period_end - event.period_start == length]
            lately |= groups_since(client, groups, now - length)
        self._quiet_until(lately, events)
        return set(lately)

    def _quiet_until(self, announced: dict[str, datetime], events: Sequence[WebhookEvent]) -> None:
        """Keep the rolling groups ``announced`` (at those moments) quiet for their window's length."""
        lengths = {event.group: event.period_end - event.period_start for event in events}
        for group, at in announced.items():
            self._quiet[group] = at + lengths[group]
            self._quiet.move_to_end(group)
        while len(self._quiet) > _REMEMBERED:
            self._quiet.popitem(last=False)

    def _remember(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._remembered[key] = None
            self._remembered.move_to_end(key)
        while len(self._remembered) > _REMEMBERED:
            self._remembered.popitem(last=False)


def _limit_of(limits: Limits, group: EndedGroup) -> LimitFigures | None:
    for layout, figures in limits:
        if layout.feature_key != group.feature_key:
            continue
        for limit in figures:
            if limit.rule.dimension_value == group.dimension_value and limit.rule.window.label == group.window:
                return limit
    return None
