"""A real arq worker on a real redis-server meters completed jobs as feature usage, with quantities from results."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from arq import Retry, create_pool
from arq.connections import RedisSettings
from arq.worker import create_worker

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver
from usagemeter_instrumentation.arq import instrument_worker_settings

QUEUE = "usagemeter-test:generation"


async def generate(ctx: dict[str, Any], prompt: str, *, user_id: str) -> dict[str, Any]:
    if prompt == "fail":
        raise ValueError("the model refused")
    if prompt == "retry" and ctx["job_try"] == 1:
        raise Retry(defer=0)
    if prompt == "broken":
        return {"model": "gpt-4o"}  # no token count: not metered
    return {"tokens": len(prompt) * 0.5, "model": "gpt-4o-mini" if len(prompt) < 5 else "gpt-4o"}


async def send_report(ctx: dict[str, Any], report: str) -> dict[str, str]:
    return {"user_id": f"owner-of-{report}", "status": "sent"}


class WorkerSettings:
    functions = [generate, send_report]
    queue_name = QUEUE


async def enqueue_and_work(settings: type, port: int) -> None:
    redis_settings = RedisSettings(host="127.0.0.1", port=port)
    pool = await create_pool(redis_settings, default_queue_name=QUEUE)
    try:
        for prompt in ("hi", "hello world", "fail", "retry", "broken"):
            await pool.enqueue_job("generate", prompt, user_id="alice")
        await pool.enqueue_job("generate", "abc", user_id="bob")
        await pool.enqueue_job("send_report", "r-1")
        await pool.enqueue_job("send_report", "r-1")
    finally:
        await pool.aclose()
    worker = create_worker(settings, redis_settings=redis_settings, burst=True, poll_delay=0.01, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()


def test_completed_jobs_are_metered_with_the_quantity_and_dimensions_of_their_result(
    grpc_receiver: GrpcReceiver, redis_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    usagemeter.configure(
        "generation-worker", grpc_receiver.endpoint, export_interval_millis=600_000, dimension_attributes=["model"]
    )
    settings = instrument_worker_settings(
        WorkerSettings,
        depth_interval_seconds=60,
        features={
            "generate": ("ai_tokens", lambda result: result["tokens"], lambda result: {"model": result["model"]}),
            "send_report": "report_delivery",
        },
    )
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"):
        asyncio.run(enqueue_and_work(settings, redis_port))
    assert usagemeter.force_flush(10_000)

    def key(user: str, feature: str, model: str | None = None) -> tuple[tuple[str, str], ...]:
        items = [("feature.key", feature), ("user.id", user)] + ([("model", model)] if model else [])
        return tuple(sorted(items))

    assert dict(grpc_receiver.recorder.usage_micros()) == {
        key("alice", "ai_tokens", "gpt-4o-mini"): 1_000_000,
        key("alice", "ai_tokens", "gpt-4o"): 5_500_000 + 2_500_000,  # "retry" once, when it completed
        key("bob", "ai_tokens", "gpt-4o-mini"): 1_500_000,
        key("owner-of-r-1", "report_delivery"): 2_000_000,  # the user named in the job's result
    }
    assert "could not take the quantity of a generate job from its result" in caplog.text


def test_job_features_of_the_wrong_shape_are_refused_when_instrumenting() -> None:
    with pytest.raises(ValueError, match=r"features\['generate'\] must be a feature key"):
        instrument_worker_settings({"functions": [generate]}, features={"generate": ("ai_tokens", 3)})  # type: ignore[dict-item]
