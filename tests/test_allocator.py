"""The glibc mmap threshold fix of tagtune.allocator, in fresh processes (it is process-wide)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

PROBE = "from tagtune.allocator import release_freed_memory_eagerly as r; print(r(), r())"


def _probe(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "TAGTUNE_MALLOC"))}
    result = subprocess.run([sys.executable, "-c", PROBE], env={**environment, **env}, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


def test_threshold_is_fixed_once_per_process() -> None:
    assert _probe() == "True True"


def test_user_choices_win() -> None:
    assert _probe(TAGTUNE_MALLOC_TUNING="0") == "False False"
    assert _probe(MALLOC_MMAP_THRESHOLD_="1048576") == "False False"


def test_activation_sized_buffers_stay_out_of_the_heap() -> None:
    """glibc raises its mmap threshold when an mmapped block is freed, so later buffers of that size come
    from the heap (which keeps them after free); with the fix they are still mmapped (given back)."""
    script = """
import ctypes
from tagtune.allocator import release_freed_memory_eagerly
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
release_freed_memory_eagerly()
libc.free(libc.malloc(8 << 20))  # a big activation freed: this is what raises the dynamic threshold
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)  # the next batch's activation
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "TAGTUNE_MALLOC"))}

    def mmapped_bytes(**env: str) -> int:
        result = subprocess.run([sys.executable, "-c", script], env={**environment, **env}, capture_output=True,
                                text=True, check=True)
        return int(result.stdout)

    assert mmapped_bytes() >= 1 << 20  # mmapped: munmap gives it back on free
    assert mmapped_bytes(TAGTUNE_MALLOC_TUNING="0") == 0  # glibc's default: from the heap
