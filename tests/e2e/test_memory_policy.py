"""The usagemeter command's memory policy: set before the engine loads, never over an operator's own choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from usagemeter import _memory

_SHOW = (
    "from usagemeter import _memory; _memory.configure(); import os; "
    "print(os.environ[_memory.ENGINE_ALLOCATOR_VARIABLE]); print(_memory.map_large_buffers())"
)


def _configured(env: dict[str, str]) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _SHOW], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_engine_allocator_returns_freed_memory_sooner_and_large_buffers_are_mapped() -> None:
    env = {key: value for key, value in os.environ.items() if key != _memory.ENGINE_ALLOCATOR_VARIABLE}
    assert _configured(env) == [_memory.ENGINE_ALLOCATOR_OPTIONS, "True"]


def test_an_operators_own_allocator_options_are_kept() -> None:
    env = os.environ | {_memory.ENGINE_ALLOCATOR_VARIABLE: "dirty_decay_ms:2000"}
    assert _configured(env)[0] == "dirty_decay_ms:2000"
