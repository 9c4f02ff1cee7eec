"""Settings of the worker process itself: glibc's malloc thresholds.

glibc gives freed memory at the top of its heap back to the kernel once more than M_TRIM_THRESHOLD is free
there, and by default adapts that threshold to the largest block freed so far (a few MiB for a server).
A streaming export allocates and frees a few MiB per batch (each record's encoded bytes, the batch's
chunk, the server's copy of it), so each batch's pages went back to the kernel and were faulted in again:
1.8 million minor page faults and 7.8 s of kernel time per 10^6 exported records on the benchmark's
machine, a quarter of the worker's CPU. Fixed thresholds (Settings.malloc_*) keep that memory in the
heap: 8,000 faults, 1 s. A process whose environment sets glibc's MALLOC_* variables is left as they say.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MIB = 2**20
_ENVIRONMENT = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune_malloc(*, trim_threshold_mib: int, mmap_threshold_mib: int) -> bool:
    """Set glibc's trim and mmap thresholds (0: leave that one); True if both were set as asked."""
    assert 0 <= trim_threshold_mib <= 1_024 and 0 <= mmap_threshold_mib <= 32
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _ENVIRONMENT):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = True
    for option, mib in ((M_TRIM_THRESHOLD, trim_threshold_mib), (M_MMAP_THRESHOLD, mmap_threshold_mib)):
        if mib:
            done = mallopt(option, mib * MIB) == 1 and done
    return done
