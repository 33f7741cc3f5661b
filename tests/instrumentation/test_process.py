"""Whole-process promises: usage is flushed at exit, and the package stays free of server dependencies."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.instrumentation.receivers import GrpcReceiver

_SCRIPT = """
import sys
import usagemeter_instrumentation as usagemeter

usagemeter.configure("exiting-host", sys.argv[1], export_interval_millis=600_000, span_sampling=1.0)
for _ in range(7):
    usagemeter.track_feature_use("document_export", "dave", format="pdf")
"""

_IMPORT_CHECK = """
import sys
import usagemeter_instrumentation

forbidden = {"fastapi", "usagemeter_clickhouse", "clickhouse_connect", "chdb", "usagemeter", "usagemeter_api"}
print(sorted(forbidden & set(sys.modules)))
"""


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` to its end in a new interpreter, without this process's OTEL_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=60)


def test_pending_usage_is_flushed_when_the_process_exits(grpc_receiver: GrpcReceiver) -> None:
    result = run_python(_SCRIPT, grpc_receiver.endpoint)

    assert result.returncode == 0, result.stderr
    assert grpc_receiver.recorder.usage_totals() == {("dave", "document_export"): 7}
    assert len(grpc_receiver.recorder.spans()) == 7


def test_importing_the_instrumentation_loads_no_server_component() -> None:
    result = run_python(_IMPORT_CHECK)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
