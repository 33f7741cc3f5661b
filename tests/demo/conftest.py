"""Fixtures: the instrumentation tests' real OTLP/gRPC receiver, real redis-server and clean pipeline state."""

from __future__ import annotations

from tests.instrumentation.conftest import clean_instrumentation, grpc_receiver, redis_port

__all__ = ["clean_instrumentation", "grpc_receiver", "redis_port"]
