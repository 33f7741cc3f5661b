"""A host started under ``opentelemetry-instrument`` meters usage without calling configure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.instrumentation.receivers import GrpcReceiver

_HOST = """
from opentelemetry import metrics
import usagemeter_instrumentation as usagemeter

for _ in range(3):
    usagemeter.track_feature_use("ai_content_generation", "alice")
usagemeter.track_conversion("signup", "alice")
metrics.get_meter("host").create_counter("host.requests").add(2, {"route": "/chat"})
"""


def test_host_under_opentelemetry_instrument_gets_metering_settings(
    grpc_receiver: GrpcReceiver, tmp_path: Path
) -> None:
    command = Path(sys.executable).parent / "opentelemetry-instrument"
    if not command.exists() and shutil.which("opentelemetry-instrument") is None:
        pytest.skip("opentelemetry-instrument is not installed (extra [zero-code])")
    script = tmp_path / "host.py"
    script.write_text(_HOST)
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env |= {
        "OTEL_PYTHON_DISTRO": "usagemeter",
        "OTEL_PYTHON_CONFIGURATOR": "usagemeter",
        "OTEL_SERVICE_NAME": "zero-code-host",
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint,
    }
    result = subprocess.run(
        [str(command), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    recorder = grpc_receiver.recorder
    assert recorder.usage_totals() == {("alice", "ai_content_generation"): 3}
    assert recorder.metric_totals("conversion.count") == {(("conversion.name", "signup"), ("user.id", "alice")): 1}
    # The host's own instruments export through the same pipeline, with delta temporality.
    assert recorder.metric_totals("host.requests") == {(("route", "/chat"),): 2}
    assert {p.service_name for p in recorder.sum_points()} == {"zero-code-host"}
