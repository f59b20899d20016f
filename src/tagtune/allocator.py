"""Keep the C allocator from holding on to freed tensor memory during inference.

Inference allocates activations of a new shape for nearly every batch (windows are sorted by length,
so shapes shrink batch after batch). glibc's ``malloc`` serves buffers above its mmap threshold with
``mmap`` and returns them on ``free``, but it raises that threshold each time such a buffer is freed
(up to 32 MiB), after which activations come from the heap, which fragments and is rarely given back:
measured on the packaged MiniLM, evaluating 3,000 CoNLL sentences grew RSS by 200 MB over the
loaded model, and 30,000 sentences by 15% more. A fixed threshold turns the raising off, so activation
buffers go back to the system when freed: the 3,000 sentences then take 100 MB over the model and the
peak stops growing with the data (benchmarks/bench_eval_memory.py).

Process-wide and idempotent; a no-op where the C library is not glibc, or when ``TAGTUNE_MALLOC_TUNING=0``
or glibc's own ``MALLOC_MMAP_THRESHOLD_`` is set (the user's choice wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 64 * 1024  # smaller than one MiniLM activation row block, larger than Python objects

_applied: bool | None = None


def release_freed_memory_eagerly() -> bool:
    """Fix glibc's mmap threshold (once per process); returns whether it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or os.environ.get("TAGTUNE_MALLOC_TUNING", "1") == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    logger.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, _applied)
    return _applied
