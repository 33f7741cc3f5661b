"""With a Redis URL the demo's report jobs run on a real arq worker, reported by usagemeter's arq adapter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

import pytest

from tests.conftest import free_port
from tests.demo.test_demo import chat_messages, replay_business
from tests.instrumentation.receivers import GrpcReceiver, wait_until
from usagemeter.demo import (
    DEFAULT_SEED,
    DEFAULT_USERS,
    REPORTS_QUEUE,
    REPORTS_WORKER_ID,
    DemoSettings,
    ReportsQueueUnavailable,
    run_demo,
)

pytest.importorskip("arq", reason="the demo's arq worker needs usagemeter-instrumentation[arq]")
redis = pytest.importorskip("redis", reason="the demo's arq worker needs the redis client (installed with arq)")


def received_jobs(receiver: GrpcReceiver) -> Counter[tuple[str, str]]:
    jobs: Counter[tuple[str, str]] = Counter()
    for items, value in receiver.recorder.metric_totals("worker.jobs").items():
        found = dict(items)
        assert (found["worker.id"], found["messaging.destination.name"]) == (REPORTS_WORKER_ID, REPORTS_QUEUE)
        jobs[(found["job.name"], found["job.status"])] += value
    return jobs


def received_durations(receiver: GrpcReceiver) -> Counter[tuple[str, str]]:
    durations: Counter[tuple[str, str]] = Counter()
    for point in receiver.recorder.histogram_points("worker.job.duration"):
        assert point.unit == "s" and point.sum >= 0
        durations[(point.attributes["job.name"], point.attributes["job.status"])] += point.count
    return durations


def test_report_jobs_run_on_an_arq_worker_over_redis(grpc_receiver: GrpcReceiver, redis_port: int) -> None:
    redis_url = f"redis://127.0.0.1:{redis_port}/1"
    run_demo(grpc_receiver.endpoint, rate_per_second=300.0, duration_seconds=1.5, log_every=0, redis_url=redis_url)

    messages = chat_messages(grpc_receiver.recorder.usage_totals())
    _, jobs = replay_business(list(DEFAULT_USERS), DEFAULT_SEED, messages)
    assert {status for _, status in jobs} == {"completed", "failed"}
    assert received_jobs(grpc_receiver) == jobs
    assert received_durations(grpc_receiver) == jobs

    beats = grpc_receiver.recorder.gauge_points("worker.heartbeat")
    expected = {"worker.id": REPORTS_WORKER_ID, "messaging.destination.name": REPORTS_QUEUE, "messaging.system": "arq"}
    assert beats and all(beat.attributes == expected for beat in beats)
    depths = grpc_receiver.recorder.gauge_points("worker.queue.depth")
    assert depths and all(point.value >= 0 for point in depths)
    assert all(
        point.attributes == {"messaging.destination.name": REPORTS_QUEUE, "messaging.system": "arq"} for point in depths
    )

    client = redis.Redis(host="127.0.0.1", port=redis_port, db=1)
    try:
        assert client.zcard(REPORTS_QUEUE) == 0  # every enqueued job was served before the demo returned
    finally:
        client.close()


def test_stop_event_drains_the_arq_queue(grpc_receiver: GrpcReceiver, redis_port: int) -> None:
    stop = threading.Event()
    kwargs = {"rate_per_second": 200.0, "stop": stop, "log_every": 0, "redis_url": f"redis://127.0.0.1:{redis_port}/2"}
    runner = threading.Thread(target=run_demo, args=(grpc_receiver.endpoint,), kwargs=kwargs)
    runner.start()
    assert wait_until(lambda: sum(received_jobs(grpc_receiver).values()) > 0)
    stop.set()
    runner.join(timeout=60)

    assert not runner.is_alive()
    _, jobs = replay_business(list(DEFAULT_USERS), DEFAULT_SEED, chat_messages(grpc_receiver.recorder.usage_totals()))
    assert received_jobs(grpc_receiver) == jobs


def test_an_unreachable_redis_is_a_clear_error(grpc_receiver: GrpcReceiver) -> None:
    with pytest.raises(ReportsQueueUnavailable, match=r"Redis at 127\.0\.0\.1"):
        run_demo(grpc_receiver.endpoint, duration_seconds=0.1, redis_url=f"redis://127.0.0.1:{free_port()}/0")


def test_a_redis_url_of_another_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="redis://host"):
        run_demo("http://127.0.0.1:1", duration_seconds=0.1, redis_url="http://127.0.0.1:6379")


def test_the_redis_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DemoSettings().redis_url is None
    monkeypatch.setenv("USAGEMETER_DEMO_REDIS_URL", "redis://redis:6379/0")
    assert DemoSettings().redis_url == "redis://redis:6379/0"


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "USAGEMETER_DEMO_"))}
    command = [sys.executable, "-m", "usagemeter", "demo", *arguments]
    return subprocess.run(command, env={**environment, **(env or {})}, capture_output=True, text=True, timeout=60)


def test_the_demo_command_runs_its_jobs_on_arq_with_redis_url(grpc_receiver: GrpcReceiver, redis_port: int) -> None:
    redis_url = f"redis://127.0.0.1:{redis_port}/3"
    result = run_cli("--endpoint", grpc_receiver.endpoint, "--duration", "1", "--rate", "100", "--redis-url", redis_url)

    assert result.returncode == 0, result.stderr
    _, jobs = replay_business(list(DEFAULT_USERS), DEFAULT_SEED, chat_messages(grpc_receiver.recorder.usage_totals()))
    assert received_jobs(grpc_receiver) == jobs
    systems = {beat.attributes["messaging.system"] for beat in grpc_receiver.recorder.gauge_points("worker.heartbeat")}
    assert systems == {"arq"}


def test_the_demo_command_reads_the_redis_url_from_the_environment() -> None:
    result = run_cli("--endpoint", "http://127.0.0.1:1", env={"USAGEMETER_DEMO_REDIS_URL": "http://127.0.0.1:6379"})

    assert result.returncode == 2
    assert "usagemeter demo: the Redis URL must look like redis://host" in result.stderr
