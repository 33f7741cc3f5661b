"""The demo host service sends reproducible, exactly counted usage for its users."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.instrumentation.receivers import GrpcReceiver, wait_until
from usagemeter.demo import (
    AI_CONTENT_GENERATION,
    CHAT_MESSAGES,
    DEFAULT_SEED,
    DEFAULT_USERS,
    DEMO_SERVICE_NAME,
    REPORTS_QUEUE,
    REPORTS_WORKER_ID,
    SIGNUP,
    UPGRADE,
    BusinessTraffic,
    ChatTraffic,
    demo_users,
    run_demo,
)


def replay(users: list[str], seed: int, messages: int) -> Counter[tuple[str, str]]:
    """The usage the seeded traffic produces for its first ``messages`` chat messages."""
    traffic = ChatTraffic(demo_users(users), seed)
    totals: Counter[tuple[str, str]] = Counter()
    for _ in range(messages):
        for use in traffic.next_message():
            totals[(use.user_id, use.feature_key)] += use.amount
    return totals


def chat_messages(totals: Counter[tuple[str, str]]) -> int:
    return sum(count for (_, feature), count in totals.items() if feature == CHAT_MESSAGES)


def test_run_demo_reports_the_seeded_traffic_exactly(grpc_receiver: GrpcReceiver) -> None:
    run_demo(grpc_receiver.endpoint, rate_per_second=200.0, duration_seconds=1.0, log_every=50)

    received = grpc_receiver.recorder.usage_totals()
    assert {user for user, _ in received} == set(DEFAULT_USERS)
    assert received == replay(list(DEFAULT_USERS), DEFAULT_SEED, chat_messages(received))
    services = {point.service_name for point in grpc_receiver.recorder.sum_points()}
    assert services == {DEMO_SERVICE_NAME}
    # Tokens are metered by model, the dimension the shipped plans limit.
    token_points = [
        point for point in grpc_receiver.recorder.sum_points() if point.attributes.get("feature.key") == "ai_tokens"
    ]
    assert token_points and {point.attributes["model"] for point in token_points} == {"gpt-4o-mini", "claude-haiku"}

    ai_spans = [
        attrs for name, attrs, _ in grpc_receiver.recorder.spans() if attrs["feature.key"] == AI_CONTENT_GENERATION
    ]
    assert len(ai_spans) == sum(count for (_, feature), count in received.items() if feature == AI_CONTENT_GENERATION)
    assert {attrs["model"] for attrs in ai_spans} == {"gpt-4o-mini", "claude-haiku"}
    assert all(attrs["prompt_tokens"] > 0 and attrs["completion_tokens"] > 0 for attrs in ai_spans)


def test_stop_event_ends_the_demo_and_flushes(grpc_receiver: GrpcReceiver) -> None:
    stop = threading.Event()
    users = ["erin", "frank"]
    runner = threading.Thread(
        target=run_demo, args=(grpc_receiver.endpoint,), kwargs={"users": users, "rate_per_second": 50.0, "stop": stop}
    )
    runner.start()
    assert wait_until(lambda: chat_messages(grpc_receiver.recorder.usage_totals()) > 0)
    stop.set()
    runner.join(timeout=30)

    assert not runner.is_alive()
    received = grpc_receiver.recorder.usage_totals()
    assert received == replay(users, DEFAULT_SEED, chat_messages(received))


def test_users_differ_and_the_free_user_nears_her_limit_within_minutes() -> None:
    three_minutes_at_five_per_second = 900
    totals = replay(list(DEFAULT_USERS), DEFAULT_SEED, three_minutes_at_five_per_second)
    ai = {user: totals[(user, AI_CONTENT_GENERATION)] for user in DEFAULT_USERS}
    assert len(set(ai.values())) == len(DEFAULT_USERS)
    assert ai["carol"] >= 40  # 80 % of the free plan's 50 generations
    assert ai["carol"] == min(ai.values())


@pytest.mark.parametrize("arguments", [{"rate_per_second": 0.0}, {"duration_seconds": -1.0}])
def test_invalid_demo_settings_are_rejected(arguments: dict) -> None:
    with pytest.raises(ValueError, match="must"):
        run_demo("http://127.0.0.1:1", **arguments)


def replay_business(users: list[str], seed: int, messages: int) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """Conversions per name and jobs per (name, status) of the first ``messages`` chat messages."""
    business = BusinessTraffic(users, seed)
    conversions: Counter[str] = Counter()
    jobs: Counter[tuple[str, str]] = Counter()
    for _ in range(messages):
        events = business.next_events()
        conversions.update(conversion.name for conversion in events.conversions)
        jobs.update((job.name, "failed" if job.fails else "completed") for job in events.jobs)
    return conversions, jobs


def test_run_demo_reports_conversions_and_the_reports_worker(grpc_receiver: GrpcReceiver) -> None:
    run_demo(grpc_receiver.endpoint, rate_per_second=300.0, duration_seconds=1.0, log_every=0)

    recorder = grpc_receiver.recorder
    messages = chat_messages(recorder.usage_totals())
    conversions, jobs = replay_business(list(DEFAULT_USERS), DEFAULT_SEED, messages)
    received_conversions: Counter[str] = Counter()
    for items, value in recorder.metric_totals("conversion.count").items():
        received_conversions[dict(items)["conversion.name"]] += value
    assert received_conversions == conversions

    received_jobs: Counter[tuple[str, str]] = Counter()
    for items, value in recorder.metric_totals("worker.jobs").items():
        found = dict(items)
        assert (found["worker.id"], found["messaging.destination.name"]) == (REPORTS_WORKER_ID, REPORTS_QUEUE)
        received_jobs[(found["job.name"], found["job.status"])] += value
    assert received_jobs == jobs

    beats = recorder.gauge_points("worker.heartbeat")
    assert beats and all(beat.attributes["worker.id"] == REPORTS_WORKER_ID for beat in beats)
    depths = recorder.gauge_points("worker.queue.depth")
    assert depths and all(point.attributes["messaging.destination.name"] == REPORTS_QUEUE for point in depths)


def test_business_traffic_has_signups_upgrades_and_failing_jobs() -> None:
    conversions, jobs = replay_business(list(DEFAULT_USERS), DEFAULT_SEED, 600)
    assert conversions[SIGNUP] > 0 and conversions[UPGRADE] > 0
    assert {status for _, status in jobs} == {"completed", "failed"}
    assert sum(count for (_, status), count in jobs.items() if status == "failed") < sum(jobs.values()) / 3
