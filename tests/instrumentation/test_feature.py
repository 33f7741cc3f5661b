"""The ``feature`` decorator and context manager count successful uses for the right user."""

from __future__ import annotations

import asyncio

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver


def _configure(receiver: GrpcReceiver) -> None:
    usagemeter.configure("host", receiver.endpoint, export_interval_millis=600_000)


def test_decorator_takes_the_user_from_the_named_argument(grpc_receiver: GrpcReceiver) -> None:
    _configure(grpc_receiver)

    @usagemeter.feature("ai_content_generation")
    def generate(prompt: str, user_id: str) -> str:
        return prompt.upper()

    @usagemeter.feature("document_export", user_arg="account")
    async def export(account: str) -> str:
        return account

    assert generate("hi", "alice") == "HI"
    assert generate(prompt="hi", user_id="bob") == "HI"
    assert asyncio.run(export("carol")) == "carol"
    usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {
        ("alice", "ai_content_generation"): 1,
        ("bob", "ai_content_generation"): 1,
        ("carol", "document_export"): 1,
    }


def test_failed_calls_are_not_counted_unless_asked(grpc_receiver: GrpcReceiver) -> None:
    _configure(grpc_receiver)

    @usagemeter.feature("ai_content_generation")
    def fail(user_id: str) -> None:
        raise RuntimeError("model unavailable")

    @usagemeter.feature("chat_messages", count_errors=True)
    def fail_counted(user_id: str) -> None:
        raise RuntimeError("model unavailable")

    with pytest.raises(RuntimeError):
        fail("alice")
    with pytest.raises(RuntimeError):
        fail_counted("alice")
    with pytest.raises(ValueError), usagemeter.feature("document_export", user_id="alice"):
        raise ValueError("bad format")
    usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {("alice", "chat_messages"): 1}


def test_context_manager_uses_resolver_then_context_user(grpc_receiver: GrpcReceiver) -> None:
    _configure(grpc_receiver)
    with usagemeter.feature("chat_messages", resolve_user=lambda: "dave"):
        pass
    token = usagemeter.set_current_user("erin")
    try:
        with usagemeter.feature("chat_messages"):
            pass
    finally:
        usagemeter.reset_current_user(token)
    with usagemeter.feature("chat_messages"):  # no user anywhere: not counted, never raises
        pass
    with usagemeter.feature("chat_messages", resolve_user=lambda: 1 / 0):  # type: ignore[arg-type,return-value]
        pass
    usagemeter.shutdown()

    assert grpc_receiver.recorder.usage_totals() == {("dave", "chat_messages"): 1, ("erin", "chat_messages"): 1}


def test_a_feature_block_counts_the_amount_set_once_it_is_known(grpc_receiver: GrpcReceiver) -> None:
    _configure(grpc_receiver)

    @usagemeter.feature("ai_tokens", amount=40)
    def summarise(user_id: str) -> str:
        return "summary"

    with usagemeter.feature("ai_tokens", user_id="alice") as use:
        use.amount = 12.5  # e.g. the tokens the model reported
    summarise("alice")
    assert usagemeter.force_flush(10_000)

    assert dict(grpc_receiver.recorder.usage_micros()) == {
        (("feature.key", "ai_tokens"), ("user.id", "alice")): 52_500_000
    }
