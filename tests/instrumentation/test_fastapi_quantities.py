"""FastAPI endpoints report the quantity a request used with record_usage; it is counted like a use."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver
from tests.instrumentation.test_fastapi import authenticate
from usagemeter_instrumentation.fastapi import UsageMeteringMiddleware, metered, record_usage

Totals = dict[tuple[tuple[str, str], ...], int]


@pytest.fixture
def receiver(grpc_receiver: GrpcReceiver) -> GrpcReceiver:
    usagemeter.configure(
        "api-host", grpc_receiver.endpoint, export_interval_millis=600_000, dimension_attributes=["model"]
    )
    return grpc_receiver


def flushed_micros(receiver: GrpcReceiver) -> Totals:
    assert usagemeter.force_flush(10_000)
    return dict(receiver.recorder.usage_micros())


def usage(user: str, feature: str, model: str | None = None) -> tuple[tuple[str, str], ...]:
    items = [("feature.key", feature), ("user.id", user)] + ([("model", model)] if model else [])
    return tuple(sorted(items))


def tokens_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/complete", dependencies=[Depends(metered("ai_tokens"))])
    async def complete(request: Request, tokens: float, model: str = "gpt-4o", fail: bool = False) -> dict[str, float]:
        record_usage(request, tokens, model=model)
        if fail:
            raise HTTPException(status_code=503, detail="model overloaded")
        return {"tokens": tokens}

    @app.post("/batch", dependencies=[Depends(metered("ai_tokens"))])
    async def batch(request: Request) -> dict[str, int]:
        for part in (100, 20, 3):
            record_usage(request, part)
        return {"parts": 3}

    @app.post("/plain", dependencies=[Depends(metered("ai_tokens"))])
    async def plain() -> dict[str, bool]:
        return {"ok": True}  # records nothing: one use

    @app.get("/stream", dependencies=[Depends(metered("streamed_tokens"))])
    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for word in ("one ", "two ", "three"):
                record_usage(request, 1.5)  # what the stream used, as it goes
                yield word.encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def test_recorded_quantities_are_counted_instead_of_one_use_for_counted_responses(receiver: GrpcReceiver) -> None:
    app = tokens_app()
    app.add_middleware(UsageMeteringMiddleware)
    alice = {"x-user": "alice"}
    with TestClient(app) as client:
        assert client.post("/complete?tokens=120", headers=alice).status_code == 200
        assert client.post("/complete?tokens=0.25&model=gpt-4o-mini", headers=alice).status_code == 200
        assert client.post("/complete?tokens=999&fail=true", headers=alice).status_code == 503
        assert client.post("/complete?tokens=0", headers=alice).status_code == 200
        assert client.post("/batch", headers=alice).json() == {"parts": 3}
        assert client.post("/plain", headers=alice).status_code == 200
        assert client.get("/stream", headers=alice).text == "one two three"

    assert flushed_micros(receiver) == {
        usage("alice", "ai_tokens", "gpt-4o"): 120_000_000,
        usage("alice", "ai_tokens", "gpt-4o-mini"): 250_000,
        usage("alice", "ai_tokens"): 124_000_000,
        usage("alice", "streamed_tokens"): 4_500_000,
    }


def test_recorded_quantities_are_counted_without_the_middleware(receiver: GrpcReceiver) -> None:
    app = tokens_app()
    with TestClient(app) as client:
        assert client.post("/complete?tokens=7.5", headers={"x-user": "bob"}).status_code == 200
        assert client.post("/complete?tokens=50&fail=true", headers={"x-user": "bob"}).status_code == 503
        assert client.post("/batch", headers={"x-user": "bob"}).status_code == 200

    assert flushed_micros(receiver) == {
        usage("bob", "ai_tokens", "gpt-4o"): 7_500_000,
        usage("bob", "ai_tokens"): 123_000_000,
    }


def test_a_route_mapped_on_the_middleware_counts_its_recorded_quantity(receiver: GrpcReceiver) -> None:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        record_usage(request, len(body))
        return {"bytes": len(body)}

    app.add_middleware(UsageMeteringMiddleware, features={("POST", "/upload"): "storage_bytes"})
    with TestClient(app) as client:
        assert client.post("/upload", content=b"x" * 4096, headers={"x-user": "carol"}).json() == {"bytes": 4096}

    assert flushed_micros(receiver) == {usage("carol", "storage_bytes"): 4096 * 10**6}


def test_a_route_metering_two_features_takes_each_quantity_by_its_feature_key(
    receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/render", dependencies=[Depends(metered("renders")), Depends(metered("gpu_seconds"))])
    async def render(request: Request, named: bool = True) -> dict[str, bool]:
        record_usage(request, 2.75, feature_key="gpu_seconds" if named else None)
        return {"ok": True}

    app.add_middleware(UsageMeteringMiddleware)
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"), TestClient(app) as client:
        assert client.post("/render", headers={"x-user": "dave"}).status_code == 200
        assert client.post("/render?named=false", headers={"x-user": "dave"}).status_code == 200

    # The unnamed quantity cannot be attributed: each feature counts its one use, and the host is told once.
    assert flushed_micros(receiver) == {
        usage("dave", "renders"): 2 * 10**6,
        usage("dave", "gpu_seconds"): 3_750_000,
    }
    assert "pass feature_key to record_usage" in caplog.text


def test_a_bad_recorded_quantity_is_dropped_without_failing_the_request(
    receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/complete", dependencies=[Depends(metered("ai_tokens"))])
    async def complete(request: Request) -> dict[str, bool]:
        record_usage(request, -3)
        record_usage(request, 2)
        return {"ok": True}

    app.add_middleware(UsageMeteringMiddleware)
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"), TestClient(app) as client:
        assert client.post("/complete", headers={"x-user": "erin"}).json() == {"ok": True}

    assert flushed_micros(receiver) == {usage("erin", "ai_tokens"): 2 * 10**6}
    assert "amount must not be negative, got -3" in caplog.text


def test_a_quantity_recorded_on_a_route_that_meters_no_feature_is_reported_once(
    receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/unmetered")
    async def unmetered(request: Request) -> dict[str, bool]:
        record_usage(request, 5)
        return {"ok": True}

    app.add_middleware(UsageMeteringMiddleware)
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"), TestClient(app) as client:
        for _ in range(2):
            assert client.post("/unmetered", headers={"x-user": "fay"}).json() == {"ok": True}

    assert flushed_micros(receiver) == {}
    assert caplog.text.count("record_usage on route /unmetered, which meters no feature") == 1
