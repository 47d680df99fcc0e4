"""The evaluation's allocator setting: keep freed memory in the process for reuse.

(Requests larger than the machine are refused by ``npvae.core.checks.check_fits``.)

Keeping freed memory in the process for reuse, instead of glibc's default of returning it:

The evaluation makes the same few arrays of a few MB (a chunk's hidden units and logits, and
the loss's temporaries) fifty thousand times over. By default glibc maps each such array fresh
from the kernel (mmap), or hands the top of its heap back as soon as a few MB are free there
(trim); either way the next array of that size touches new pages, and the kernel must fault in
and zero every 4 kB page of it. In ``benchmarks/iwae_time.py`` that doubled the time of the
log-likelihood (23,000 page faults per image, k = 5000), depending on the heap's history.

``keep_freed_memory`` asks glibc (Linux) to serve blocks under 32 MB from its heap and to keep
up to 1 GB of free heap for reuse. The process then holds on to its peak heap (for the
evaluation, tens of MB) rather than giving it back between chunks. It is what
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824`` in the environment does,
set once, at the first evaluation. On other C libraries it does nothing.
"""

import ctypes
import ctypes.util
import sys


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit Linux
TRIM_THRESHOLD = 2**30

_done = False


def keep_freed_memory():
    """Set glibc's mmap and trim thresholds once per process. True if they are set."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
