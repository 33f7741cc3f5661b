"""The production topology under faults, every part a real process on one ClickHouse server of the test's own.

``usagemeter migrate``, two ``usagemeter collector`` processes (each with its own spool) and two
``usagemeter api`` processes; eight host services on the raw OTel SDK (every combination of
OTLP/gRPC or OTLP/HTTP and delta or cumulative temporality, on each collector) count uses of
the same users. While they send, one collector is killed with SIGKILL and restarted on the same
spool, then the ClickHouse server is stopped for 20 s and started again, and one API is restarted
while it is away. Every user's total, read through both APIs (quota and usage series, as the
user and as an admin), must equal what the senders counted.

An API started while ClickHouse is away currently refuses to start: it exits with code 1 and the
traceback of clickhouse-connect's OperationalError naming the server's address. The test accepts
that or an API that serves and reports ClickHouse unreachable, and requires exact totals from the
restarted API once the server is back either way.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import ServerFactory
from tests.server.processes import Api, Collector, run_migrate, server_env, start_api, start_collector, token
from tests.server.senders import FEATURE, CountingSender, SenderLoad

USERS = [f"user-{number:03d}" for number in range(120)]
OUTAGE_SECONDS = 20
#: Sending before, between and after the faults, so each meets traffic in flight.
STEADY_SECONDS = 3


def _senders(collectors: Sequence[Collector]) -> list[CountingSender]:
    combinations = itertools.product(collectors, ("grpc", "http"), ("delta", "cumulative"))
    return [
        CountingSender(collector, protocol, temporality, f"backend-{number}")  # type: ignore[arg-type]
        for number, (collector, protocol, temporality) in enumerate(combinations)
    ]


def _json(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, f"{response.request.url}: {response.status_code} {response.text}"
    body: dict[str, object] = response.json()
    return body


def _seen(apis: Sequence[Api], client: httpx.Client) -> dict[str, dict[str, object]]:
    """Each user's total as four readers see it: one API as the user, the other as an admin; quota and usage."""
    admin = token("operator", admin=True)
    seen: dict[str, dict[str, object]] = {}
    for number, user in enumerate(USERS):
        own, other = apis[number % 2], apis[(number + 1) % 2]
        mine = token(user)
        seen[user] = {
            f"{own.name} quota as the user": _json(own.get(f"/quotas/{FEATURE}", mine, client))["used"],
            f"{own.name} usage as the user": _json(
                own.get(f"/analytics/usage/{FEATURE}", mine, client, period="month")
            )["total"],
            f"{other.name} quota as an admin": _json(other.get(f"/quotas/{FEATURE}", admin, client, user_id=user))[
                "used"
            ],
            f"{other.name} usage as an admin": _json(
                other.get(f"/analytics/usage/{FEATURE}", admin, client, user_id=user, period="month")
            )["total"],
        }
    return seen


def _assert_exact(apis: Sequence[Api], expected: dict[str, int], timeout: float = 30) -> None:
    """Every reader agrees with the senders for every user (waiting for the APIs' views to catch up)."""
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while True:
            wrong = {
                (user, reader): (value, expected.get(user, 0))
                for user, readers in _seen(apis, client).items()
                for reader, value in readers.items()
                if value != expected.get(user, 0)
            }
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(1)
    shown = dict(itertools.islice(wrong.items(), 12))
    assert not wrong, f"{len(wrong)} readings differ from what was sent (read, sent): {shown}"


def _restart_api_without_server(api: Api, server: ClickHouseServer) -> int | None:
    """Restart ``api`` while ClickHouse is away: its exit code if it refuses, None if it serves."""
    assert api.stop() == 0, api.output()
    logged = len(api.output())
    code = api.start_or_exit()
    if code is not None:
        assert code != 0, "an API that cannot reach ClickHouse must not exit as if it succeeded"
        assert f"127.0.0.1:{server.http_port}" in api.output()[logged:], api.output()[logged:]
        return code
    health = httpx.get(f"{api.base}/health", timeout=10).json()
    assert health["clickhouse"] == "unreachable", health
    return None


def test_totals_stay_exact_through_a_killed_collector_a_server_outage_and_a_restarted_api(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory.server()
    env = server_env(server.url(), "usagemeter")
    run_migrate(env)
    collectors = [start_collector(env, tmp_path / f"collector{n}", f"collector{n}") for n in (1, 2)]
    apis = [start_api(env, tmp_path, f"api{n}") for n in (1, 2)]
    load = SenderLoad(_senders(collectors), USERS)
    try:
        load.start()
        time.sleep(STEADY_SECONDS)
        collectors[0].kill()
        collectors[0].start()
        time.sleep(STEADY_SECONDS)
        server.stop()
        outage_started = time.monotonic()
        refused = _restart_api_without_server(apis[1], server)
        assert httpx.get(f"{apis[0].base}/health", timeout=10).json()["clickhouse"] == "unreachable"
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        # Both collectors kept acknowledging while the server was away: what they took waits in their spools.
        assert all(collector.metric("spool_bytes") > 0 for collector in collectors)
        server.start()
        time.sleep(STEADY_SECONDS)
        expected = load.stop()
        for collector in collectors:
            collector.wait_drained(timeout=90)
        if refused is not None:
            apis[1].start()
        assert sum(expected.values()) > 0
        _assert_exact(apis, expected)
    finally:
        load.stop_quietly()
        for service in (*collectors, *apis):
            service.stop()
