"""FastAPI routes are metered by mapping and by dependency, counted exactly at a real OTLP receiver."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

import usagemeter_instrumentation as usagemeter
from tests.conftest import free_port
from tests.instrumentation.receivers import GrpcReceiver, wait_until
from usagemeter_instrumentation.fastapi import UsageMeteringMiddleware, metered

LONG_INTERVAL = 600_000
CHUNKS = [f"chunk-{index}\n".encode() for index in range(5)]


async def authenticate(request: Request) -> None:
    """The host's authentication: the user id arrives in a header and is kept on the request state."""
    user = request.headers.get("x-user")
    if user:
        request.state.user_id = user


def chat_app(release_stream: threading.Event | None = None) -> FastAPI:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/chat")
    async def chat() -> dict[str, str]:
        return {"reply": "hello"}

    @app.post("/chat/fail")
    async def chat_fail() -> dict[str, str]:
        raise HTTPException(status_code=429, detail="quota exceeded")

    @app.get("/documents/{document_id}/export")
    def export(document_id: str) -> dict[str, str]:
        return {"document": document_id}

    @app.post("/generate", dependencies=[Depends(metered("ai_content_generation"))])
    async def generate(fail: bool = False) -> JSONResponse:
        return JSONResponse({"ok": not fail}, status_code=500 if fail else 201)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index, chunk in enumerate(CHUNKS):
                yield chunk
                if index == 0 and release_stream is not None:
                    # The second chunk waits until the client has the first: the middleware must not buffer.
                    await asyncio.to_thread(release_stream.wait, 15)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("endpoint failure")

    return app


FEATURES = {
    ("POST", "/chat"): "chat_messages",
    ("POST", "/chat/fail"): "chat_messages",
    ("GET", "/documents/{document_id}/export"): "document_export",
    ("*", "/stream"): "streamed_replies",
    ("GET", "/boom"): "boom",
}


@pytest.fixture
def receiver(grpc_receiver: GrpcReceiver) -> GrpcReceiver:
    usagemeter.configure("api-host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    return grpc_receiver


def flushed_usage(receiver: GrpcReceiver) -> Counter[tuple[str, str]]:
    assert usagemeter.force_flush(10_000)
    return receiver.recorder.usage_totals()


def test_mapped_routes_count_successful_responses_only(receiver: GrpcReceiver) -> None:
    app = chat_app()
    app.add_middleware(UsageMeteringMiddleware, features=FEATURES)
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.post("/chat", headers={"x-user": "alice"}).json() == {"reply": "hello"}
        assert client.post("/chat", headers={"x-user": "bob"}).status_code == 200
        assert client.post("/chat/fail", headers={"x-user": "alice"}).status_code == 429
        assert client.get("/documents/d-7/export", headers={"x-user": "bob"}).json() == {"document": "d-7"}
        assert client.get("/documents/d-8/export", headers={"x-user": "bob"}).status_code == 200
        assert client.get("/boom", headers={"x-user": "alice"}).status_code == 500
        assert client.get("/missing", headers={"x-user": "alice"}).status_code == 404
        assert client.post("/chat").status_code == 200  # no user: served, not counted

    assert flushed_usage(receiver) == {
        ("alice", "chat_messages"): 3,
        ("bob", "chat_messages"): 1,
        ("bob", "document_export"): 2,
    }


def test_metered_dependency_counts_under_the_middleware(receiver: GrpcReceiver) -> None:
    app = chat_app()
    app.add_middleware(UsageMeteringMiddleware)
    with TestClient(app) as client:
        assert client.post("/generate", headers={"x-user": "carol"}).status_code == 201
        assert client.post("/generate", headers={"x-user": "carol"}).status_code == 201
        assert client.post("/generate?fail=true", headers={"x-user": "carol"}).status_code == 500
        assert client.post("/chat", headers={"x-user": "carol"}).status_code == 200  # not mapped here

    assert flushed_usage(receiver) == {("carol", "ai_content_generation"): 2}


def test_metered_dependency_counts_without_the_middleware(receiver: GrpcReceiver) -> None:
    app = FastAPI(dependencies=[Depends(authenticate)])

    @app.post("/generate", dependencies=[Depends(metered("ai_content_generation"))])
    async def generate(fail: bool = False) -> dict[str, bool]:
        if fail:
            raise HTTPException(status_code=402, detail="upgrade required")
        return {"ok": True}

    with TestClient(app) as client:
        assert client.post("/generate", headers={"x-user": "dave"}).json() == {"ok": True}
        assert client.post("/generate?fail=true", headers={"x-user": "dave"}).status_code == 402

    assert flushed_usage(receiver) == {("dave", "ai_content_generation"): 1}


def test_counted_statuses_are_configurable(receiver: GrpcReceiver) -> None:
    app = chat_app()
    app.add_middleware(UsageMeteringMiddleware, features=FEATURES, count_statuses=range(200, 500))
    with TestClient(app) as client:
        client.post("/chat/fail", headers={"x-user": "erin"})
        client.post("/chat", headers={"x-user": "erin"})

    assert flushed_usage(receiver) == {("erin", "chat_messages"): 2}


def test_a_failing_resolver_is_harmless_and_logged_once(
    receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Request) -> str | None:
        raise LookupError("session store unavailable")

    app = chat_app()
    app.add_middleware(UsageMeteringMiddleware, features=FEATURES, user_resolver=broken)
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"), TestClient(app) as client:
        responses = [client.post("/chat", headers={"x-user": "frank"}) for _ in range(3)]

    assert [(r.status_code, r.json()) for r in responses] == [(200, {"reply": "hello"})] * 3
    assert [r.message for r in caplog.records if "resolver" in r.message] == [
        "usagemeter's user resolver failed; the request is not metered"
    ]
    assert flushed_usage(receiver) == {}


def test_a_custom_resolver_names_the_user(receiver: GrpcReceiver) -> None:
    app = chat_app()
    app.add_middleware(
        UsageMeteringMiddleware, features=FEATURES, user_resolver=lambda request: request.headers.get("x-account")
    )
    with TestClient(app) as client:
        client.post("/chat", headers={"x-account": "acct-1"})

    assert flushed_usage(receiver) == {("acct-1", "chat_messages"): 1}


@pytest.fixture
def streaming_server() -> Iterator[tuple[str, threading.Event]]:
    """The chat app with the middleware under a real uvicorn server on 127.0.0.1."""
    release = threading.Event()
    app = chat_app(release)
    app.add_middleware(UsageMeteringMiddleware, features=FEATURES)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started)
    yield f"http://127.0.0.1:{port}", release
    release.set()
    server.should_exit = True
    thread.join(timeout=10)


def test_streaming_responses_pass_through_unbuffered(
    receiver: GrpcReceiver, streaming_server: tuple[str, threading.Event]
) -> None:
    base_url, release = streaming_server
    with (
        httpx.Client(base_url=base_url, timeout=20) as client,
        client.stream("GET", "/stream", headers={"x-user": "gina"}) as response,
    ):
        parts = response.iter_raw()
        first = next(parts)
        release.set()
        body = first + b"".join(parts)
        assert response.headers["content-type"].startswith("text/plain")

    assert first == CHUNKS[0]
    assert body == b"".join(CHUNKS)
    assert wait_until(lambda: flushed_usage(receiver) == {("gina", "streamed_replies"): 1})


def test_importing_the_package_does_not_import_fastapi_or_arq() -> None:
    code = (
        "import sys, usagemeter_instrumentation\n"
        "loaded = sorted(m for m in ('fastapi', 'starlette', 'arq', 'redis') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
