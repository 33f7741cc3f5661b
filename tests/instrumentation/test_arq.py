"""A real arq worker on a real redis-server reports heartbeats, queue depth and its jobs over OTLP."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from arq import Retry, create_pool
from arq.connections import RedisSettings
from arq.worker import create_worker

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver
from tests.instrumentation.test_workers import job_totals
from usagemeter_instrumentation.arq import instrument_worker_settings

QUEUE = "usagemeter-test:reports"
WORKER_ID = "arq-worker-1"
REPORTS = 9  # build_report(n) fails when n is a multiple of 3


async def build_report(ctx: dict[str, Any], number: int) -> int:
    if number % 3 == 0:
        raise ValueError(f"report {number} has no data")
    await asyncio.sleep(0.001)
    return number


async def send_email(ctx: dict[str, Any]) -> str:
    return "sent"


async def flaky_sync(ctx: dict[str, Any]) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0)  # arq runs it again: one completed job in the end
    return "synced"


def worker_settings(host_calls: Counter[str]) -> type:
    async def startup(ctx: dict[str, Any]) -> None:
        host_calls["startup"] += 1

    async def after_job(ctx: dict[str, Any]) -> None:
        host_calls["after_job_end"] += 1
        # A collection while the worker runs, as the periodic export would make.
        assert usagemeter.force_flush(10_000)

    async def shutdown(ctx: dict[str, Any]) -> None:
        host_calls["shutdown"] += 1

    class WorkerSettings:
        functions = [build_report, send_email, flaky_sync]
        queue_name = QUEUE
        on_startup = startup
        after_job_end = after_job
        on_shutdown = shutdown

    return WorkerSettings


async def enqueue_and_work(settings: type, port: int) -> None:
    redis_settings = RedisSettings(host="127.0.0.1", port=port)
    pool = await create_pool(redis_settings, default_queue_name=QUEUE)
    try:
        for number in range(REPORTS):
            await pool.enqueue_job("build_report", number)
        await pool.enqueue_job("send_email")
        await pool.enqueue_job("send_email")
        await pool.enqueue_job("flaky_sync")
    finally:
        await pool.aclose()
    worker = create_worker(settings, redis_settings=redis_settings, burst=True, poll_delay=0.01, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()


@pytest.fixture
def receiver(grpc_receiver: GrpcReceiver) -> GrpcReceiver:
    usagemeter.configure("report-worker", grpc_receiver.endpoint, export_interval_millis=600_000)
    return grpc_receiver


def test_arq_worker_reports_jobs_heartbeats_and_queue_depth(receiver: GrpcReceiver, redis_port: int) -> None:
    host_calls: Counter[str] = Counter()
    # A long depth interval: the worker reads the depth once at start, before any job has left the queue.
    settings = instrument_worker_settings(worker_settings(host_calls), worker_id=WORKER_ID, depth_interval_seconds=60)
    asyncio.run(enqueue_and_work(settings, redis_port))
    heartbeats_while_running = len(receiver.recorder.gauge_points("worker.heartbeat"))
    assert usagemeter.force_flush(10_000)

    assert host_calls == {"startup": 1, "after_job_end": REPORTS + 2 + 2, "shutdown": 1}
    assert job_totals(receiver) == {
        (WORKER_ID, QUEUE, "build_report", "completed"): 6,
        (WORKER_ID, QUEUE, "build_report", "failed"): 3,
        (WORKER_ID, QUEUE, "send_email", "completed"): 2,
        (WORKER_ID, QUEUE, "flaky_sync", "completed"): 1,
    }
    durations: Counter[tuple[str, str]] = Counter()
    for point in receiver.recorder.histogram_points("worker.job.duration"):
        assert point.unit == "s" and point.sum >= 0
        durations[(point.attributes["job.name"], point.attributes["job.status"])] += point.count
    assert durations == {
        ("build_report", "completed"): 6,
        ("build_report", "failed"): 3,
        ("send_email", "completed"): 2,
        ("flaky_sync", "completed"): 1,
    }

    beats = receiver.recorder.gauge_points("worker.heartbeat")
    assert heartbeats_while_running >= REPORTS + 2 + 2
    assert len(beats) == heartbeats_while_running  # none once the worker has shut down
    expected = {"worker.id": WORKER_ID, "messaging.destination.name": QUEUE, "messaging.system": "arq"}
    assert all(beat.attributes == expected for beat in beats)

    depths = receiver.recorder.gauge_points("worker.queue.depth")
    assert depths and {point.value for point in depths} == {REPORTS + 3}
    assert depths[0].attributes == {"messaging.destination.name": QUEUE, "messaging.system": "arq"}


def test_instrumenting_twice_or_a_dict_keeps_the_host_hooks() -> None:
    host_calls: Counter[str] = Counter()
    settings = worker_settings(host_calls)
    once = instrument_worker_settings(settings)
    hook = once.on_startup
    assert instrument_worker_settings(once).on_startup is hook

    as_dict = instrument_worker_settings({"functions": [send_email], "queue_name": QUEUE})
    assert set(as_dict) >= {"on_startup", "on_shutdown", "after_job_end", "functions"}
    with pytest.raises(ValueError, match="depth_interval_seconds"):
        instrument_worker_settings({}, depth_interval_seconds=0)
