"""A shard down for 20 s during ingest: collectors keep acknowledging, every quota answer is right or refused
(fresh for users of the live shard), usage reads that need the missing shard fail with a 503, and once the shard
is back every total is exact."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.cluster.support import FEATURE, cluster_env, local_usage, quota_used
from tests.cluster.test_cluster_pipeline import USERS, wait_for_used
from tests.conftest import ServerFactory
from tests.server.processes import Api, Collector, run_migrate, start_api, start_collector, token
from tests.server.senders import send_usage

OUTAGE_SECONDS = 20
#: The default bound on held usage figures (longer than the outage), and one shorter than the outage.
LONG_BOUND, SHORT_BOUND = 300, 4
#: Each quota mode: per-user reads from ClickHouse, and the in-memory view (the default).
MODES: dict[str, dict[str, str]] = {"per-user": {"quota_live_usage": "false"}, "in-memory": {}}
#: An operator's profile that lets a Distributed query answer from the shards it can reach.
SKIPPING_PROFILE = {"skip_unavailable_shards": "1"}
ADMIN = "operator"


@dataclass
class Outage:
    """What the test knows while the shard is down."""

    on_stopped_shard: set[str]
    before: dict[str, int]
    stopped_at: datetime
    acknowledged: Counter[str] = field(default_factory=Counter)
    # Per (API, user): each quota answer as fresh, stale or refused, in order.
    outcomes: defaultdict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))


def spooled(collector: Collector) -> bool:
    """Whether the collector holds acknowledged data not yet in ClickHouse."""
    return "\nusagemeter_collector_spool_bytes 0\n" not in collector.metrics()


def per_user(api: Api) -> bool:
    return api.env.get("USAGEMETER_QUOTA_LIVE_USAGE") == "false"


def bound_of(api: Api) -> float:
    return float(api.env["USAGEMETER_QUOTA_MAX_STALENESS_SECONDS"])


def bearer(user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(user, admin=user == ADMIN)}"}


def get(api: Api, path: str, user: str) -> httpx.Response:
    return httpx.get(api.base + path, headers=bearer(user), timeout=30)


def assign(api: Api, user: str, plan_id: str) -> httpx.Response:
    return httpx.put(
        f"{api.base}/admin/users/{user}/plan", json={"plan_id": plan_id}, headers=bearer(ADMIN), timeout=30
    )


def assert_usage_right(user: str, used: float, outage: Outage) -> None:
    """A user on the stopped shard has their last known usage (never the live shard's part alone, which is none);
    a user on the live shard at least their usage before the stop and at most what was acknowledged."""
    if user in outage.on_stopped_shard:
        assert used == outage.before[user], (user, used)
    else:
        assert outage.before[user] <= used <= outage.acknowledged[user], (user, used)


def quota_outcome(answer: httpx.Response, user: str, outage: Outage) -> str:
    """``fresh``, ``stale`` or ``refused``; fails on any wrong answer.

    A figure of a user on the stopped shard is fresh only if it was read before the stop.
    """
    if answer.status_code == 503:
        # Every user was read before the stop, so a refusal is of figures held too long, and says which setting.
        assert "USAGEMETER_QUOTA_MAX_STALENESS_SECONDS" in answer.json()["detail"], answer.text
        assert int(answer.headers["retry-after"]) > 0
        return "refused"
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_usage_right(user, body["used"], outage)
    if user in outage.on_stopped_shard:
        assert body["stale"] or datetime.fromisoformat(body["as_of"]) <= outage.stopped_at, (user, body)
    return "stale" if body["stale"] else "fresh"


def check_quotas(api: Api, outage: Outage, limits: dict[str, int]) -> None:
    """Every user's quota, as ``GET /quotas/{feature}`` and as the check before metered work."""
    for user in USERS:
        for answer in (quota_used(api.base, user), get(api, f"/quotas/{FEATURE}/check", user)):
            if answer.status_code == 200:
                assert answer.json()["limit"] == limits[user], answer.text  # the held plan catalog
            outage.outcomes[api.name, user].append(quota_outcome(answer, user, outage))


def check_reports(api: Api, outage: Outage) -> None:
    """Usage reports need the user's shard, span breakdowns and dashboards every shard: 503 or right, never partial."""
    for user in (min(outage.on_stopped_shard), min(set(USERS) - outage.on_stopped_shard)):
        report = get(api, f"/analytics/usage/{FEATURE}?period=month", user)
        if user in outage.on_stopped_shard:
            assert report.status_code == 503 and report.json()["detail"], (api.name, report.text)
        else:
            assert report.status_code == 200, (api.name, report.text)
            assert_usage_right(user, report.json()["total"], outage)
        breakdown = get(api, f"/analytics/usage/{FEATURE}/breakdown?period=month", user)
        assert breakdown.status_code == 503 and breakdown.json()["detail"], (api.name, breakdown.text)
        dashboard = get(api, "/analytics/dashboard-metrics", user)
        if dashboard.status_code == 200:  # the system view cached just before the stop
            (quota,) = [item for item in dashboard.json()["quotas"] if item["feature_key"] == FEATURE]
            assert_usage_right(user, quota["used"], outage)
        else:
            assert dashboard.status_code == 503 and dashboard.json()["detail"], (api.name, dashboard.text)
    for path, user in (("/workers", USERS[0]), ("/health/details", ADMIN)):
        answer = get(api, path, user)
        assert answer.status_code == 503 and answer.json()["detail"], (api.name, path, answer.text)


def assert_outcomes(apis: list[Api], outage: Outage) -> None:
    """Held figures answer within the bound, and past it are refused for good; the live shard's users stay fresh
    in both modes (the view, stale, gives way to a read of the user's own shard)."""
    for api in apis:
        for user in USERS:
            seen = outage.outcomes[api.name, user]
            refused_from = seen.index("refused") if "refused" in seen else len(seen)
            assert set(seen[refused_from:]) <= {"refused"}, (api.name, user, seen)
            if user not in outage.on_stopped_shard:
                assert set(seen) == {"fresh"}, (api.name, user, seen)
            elif bound_of(api) > OUTAGE_SECONDS:
                assert "refused" not in seen and "stale" in seen, (api.name, user, seen)
            else:
                assert seen[-1] == "refused", (api.name, user, seen)


def test_during_a_shard_outage_live_shard_quotas_stay_fresh_others_are_last_known_or_refused_reports_never_partial(
    server_factory: ServerFactory, database: str, tmp_path: Path
) -> None:
    live, down = server_factory.cluster(profile=SKIPPING_PROFILE)
    run_migrate(cluster_env(live, database))
    collectors = [
        start_collector(cluster_env(s, database), tmp_path / f"c{n}", f"c{n}") for n, s in enumerate((live, down))
    ]
    apis = [
        start_api(cluster_env(live, database, quota_max_staleness_seconds=str(b), **env), tmp_path, f"{mode}-{b}s")
        for mode, env in MODES.items()
        for b in (LONG_BOUND, SHORT_BOUND)
    ]
    acknowledged: Counter[str] = Counter()
    try:
        for collector in collectors:
            uses = dict.fromkeys(USERS, 2)
            send_usage(collector.grpc_endpoint, uses)
            acknowledged.update(uses)
        for collector in collectors:
            collector.wait_drained()
        wait_for_used(apis, {user: float(total) for user, total in acknowledged.items()})
        on_stopped_shard = set(local_usage(down, database, "usage_day_local"))
        assert on_stopped_shard and on_stopped_shard != set(USERS), "both shards hold some users' usage"
        # A plan change just before the outage: the catalog each API holds through it must have it.
        for api in apis:
            moved = assign(api, USERS[0], "pro")
            assert moved.is_success, moved.text
        limits = {user: 2000 if user == USERS[0] else 50 for user in USERS}

        down.stop()
        outage = Outage(on_stopped_shard, dict(acknowledged), datetime.now(UTC), acknowledged)
        # The profile is in force: a query of its own answers from the live shard alone.
        someone = min(on_stopped_shard)
        partial = live.query(
            f"SELECT sum(Quantity) FROM `{database}`.usage_day WHERE UserId = '{someone}' AND DimensionKey = ''"
        )
        assert float(partial) < outage.before[someone]
        refused = assign(apis[0], USERS[1], "enterprise")
        assert refused.status_code == 503 and refused.json()["detail"], refused.text
        stopped, round_ = time.monotonic(), 0
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            round_ += 1
            for collector in collectors:
                uses = {user: round_ % 3 + 1 for user in USERS}
                send_usage(collector.grpc_endpoint, uses)  # acknowledged, or it raises
                acknowledged.update(uses)
            for api in apis:
                check_quotas(api, outage, limits)
                check_reports(api, outage)
            time.sleep(2)
        assert all(spooled(collector) for collector in collectors)
        assert_outcomes(apis, outage)
        for api in apis:
            assert "answering from the held catalog" in api.output(), f"{api.name} never failed to re-read the plans"
        down.start()

        for collector in collectors:
            collector.wait_drained(timeout=120)
        wait_for_used(apis, {user: float(total) for user, total in acknowledged.items()})
        assert local_usage(down, database, "usage_day_local"), "the restarted shard holds its users"
        assert round_ >= 2
    finally:
        for service in [*collectors, *apis]:
            assert service.stop() == 0, service.output()[-3000:]
