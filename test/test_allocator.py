import json
import os
import platform
import subprocess
import sys

import pytest

from robot_classify.runtime import allocator
from robot_classify.runtime.allocator import keep_frame_buffers

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Runs in a fresh interpreter: malloc one 8 MiB block, free it, and report from glibc's
# mallinfo whether it came from its own mmap (hblks) or from the heap, and how much free
# space the heap kept afterwards (fordblks). The 8 MiB lies between glibc's default mmap
# threshold (128 KiB, growing to at most 32 MiB only after such a block was freed) and ours.
_PROBE = """
import ctypes, ctypes.util, json, sys
from robot_classify.runtime.allocator import keep_frame_buffers
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
word = ctypes.c_size_t if hasattr(libc, "mallinfo2") else ctypes.c_int
class Info(ctypes.Structure):
    _fields_ = [(n, word) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                    "uordblks", "fordblks", "keepcost")]
info = libc.mallinfo2 if word is ctypes.c_size_t else libc.mallinfo
info.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
accepted = keep_frame_buffers() if sys.argv[1] == "tuned" else None
before = info()
block = libc.malloc(8 << 20)
during = info()
libc.free(block)
after = info()
print(json.dumps({"accepted": accepted, "mmapped": during.hblks - before.hblks, "kept_free": after.fordblks}))
"""


def _probe(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # the defaults, not a user's
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt and mallinfo are glibc's")
def test_keep_frame_buffers_keeps_frame_sized_blocks_in_the_heap():
    """Default glibc mmaps an 8 MiB block and unmaps it on free; tuned, it comes from the heap and stays."""
    default, tuned = _probe("default"), _probe("tuned")
    assert default["mmapped"] == 1  # the control: without the call the block is its own mapping
    assert tuned["accepted"] is True
    assert tuned["mmapped"] == 0
    assert tuned["kept_free"] >= 8 << 20  # freed, but not trimmed: the next frame reuses it


@pytest.mark.skipif(GLIBC, reason="this is the non-glibc contract")
def test_keep_frame_buffers_is_a_no_op_without_glibc():
    assert keep_frame_buffers() is False


def test_keep_frame_buffers_reports_a_refusal(monkeypatch):
    """When the C library has no mallopt, or mallopt refuses, the call says so and changes nothing."""
    class NoMallopt:
        pass

    class Refusing:  # stands in for ctypes' function object, which takes argtypes
        def __init__(self):
            self.calls = []

        def __call__(self, param, value):
            self.calls.append((param, value))
            return 0

    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: NoMallopt())
    assert keep_frame_buffers() is False
    mallopt = Refusing()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: type("Lib", (), {"mallopt": mallopt})())
    assert keep_frame_buffers(1 << 20) is False
    assert mallopt.calls == [(allocator._M_MMAP_THRESHOLD, 1 << 20)]


def test_library_import_leaves_the_allocator_alone():
    """Only entry points tune the process; importing the package must not."""
    code = ("import sys, robot_classify.runtime.patches, robot_classify.runtime.frame_processor; "
            "sys.exit(int('robot_classify.runtime.allocator' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
