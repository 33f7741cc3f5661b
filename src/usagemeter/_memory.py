"""The memory policy of the ``usagemeter`` processes: freed memory goes back to the operating system.

Two allocators hold on to memory the process no longer uses. glibc raises its mmap
threshold each time a large mapped block is freed, so after the first spool segment
every later multi-megabyte buffer comes from the heap, which keeps it. The embedded
engine's jemalloc keeps freed pages for 5 s before returning them; under sustained
ingest that is several inserts' worth of working memory. Fixing the one's threshold
and shortening the other's delay keeps a collector under load at what its live data
needs, with no measurable cost in throughput (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
#: Blocks from this size up are mapped on their own and unmapped when freed.
LARGE_BUFFER_BYTES = 1024 * 1024
#: The embedded engine's allocator options (read once, when the engine is loaded); a value set
#: in the environment is kept.
ENGINE_ALLOCATOR_VARIABLE = "JE_MALLOC_CONF"
ENGINE_ALLOCATOR_OPTIONS = "dirty_decay_ms:500"


def configure() -> None:
    """Apply the policy to this process; call it before the embedded engine is first imported."""
    os.environ.setdefault(ENGINE_ALLOCATOR_VARIABLE, ENGINE_ALLOCATOR_OPTIONS)
    map_large_buffers()


def map_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        logger.debug("no mallopt in this C library; large buffers keep its default policy")
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
