"""Metadata of a use becomes a ``feature.use`` span; uses without metadata make no span."""

from __future__ import annotations

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver


def test_metadata_becomes_a_span_with_primitive_attributes(grpc_receiver: GrpcReceiver) -> None:
    usagemeter.configure("chat", grpc_receiver.endpoint, export_interval_millis=600_000, span_sampling=1.0)
    usagemeter.track_feature_use(
        "ai_content_generation",
        "alice",
        model="gpt-4o-mini",
        prompt_tokens=120,
        temperature=0.2,
        streamed=True,
        tags=["a", "b"],
        missing=None,
    )
    usagemeter.track_feature_use("chat_messages", "alice")
    usagemeter.shutdown()

    spans = grpc_receiver.recorder.spans()
    assert len(spans) == 1
    name, attributes, service = spans[0]
    assert (name, service) == ("feature.use", "chat")
    assert attributes == {
        "feature.key": "ai_content_generation",
        "user.id": "alice",
        "model": "gpt-4o-mini",
        "prompt_tokens": 120,
        "temperature": 0.2,
        "streamed": True,
        "tags": "['a', 'b']",
    }
    assert grpc_receiver.recorder.usage_totals() == {
        ("alice", "ai_content_generation"): 1,
        ("alice", "chat_messages"): 1,
    }


def test_metadata_cannot_overwrite_the_identifiers(http_receiver: HttpReceiver) -> None:
    usagemeter.configure(
        "chat", http_receiver.endpoint, protocol="http/protobuf", export_interval_millis=600_000, span_sampling=1.0
    )
    usagemeter.track_feature_use("document_export", "bob", **{"user.id": "mallory", "format": "pdf"})
    usagemeter.shutdown()

    [(_, attributes, _)] = http_receiver.recorder.spans()
    assert attributes == {"feature.key": "document_export", "user.id": "bob", "format": "pdf"}
    assert http_receiver.recorder.usage_totals() == {("bob", "document_export"): 1}
