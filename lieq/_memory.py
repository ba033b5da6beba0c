"""CPU memory allocation for large batches: the forward engine's tangents and the baselines' batches of samples.

A forward-mode pass over ``G`` generators and ``B`` images allocates one tangent tensor of ``G * B`` feature maps per
operation, 50-200 MB for an ImageNet model at ``G * B = 56``.  glibc's ``malloc`` serves every block above its mmap
threshold (at most 32 MB) with a fresh ``mmap`` and returns it with ``munmap`` when freed, so each operation pays a
page fault per 4 KiB page on first touch.  Measured side by side on a 2-core CPU (resnet50, batch 8, the paper's 8
generators): 6.9 s per Lie derivative with the default settings and 3.0 s with the two settings below, while the
plain forward pass (blocks under the threshold) did not change.  :func:`retain_freed_memory` asks ``malloc`` to serve
all blocks from its heap and to keep freed memory for reuse (``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD = 2 GiB``); the
price is that the process keeps its peak memory.  It is a no-op where glibc is not the C library.

These settings belong to the whole process, so they are the program's choice, never a library call's: nothing in
:mod:`lieq` applies them on its own.  The entry points opt in: the command line (``lieq ...``) and the benchmarks
(``python -m lieq.bench``) call :func:`retain_freed_memory` at start, and the Makefile's compute targets set
``LIEQ_RETAIN_MEMORY=1``, with which ``import lieq`` applies them (:func:`apply_if_requested`; so notebooks run by
papermill get them too).  ``LIEQ_RETAIN_MEMORY=0`` turns them off everywhere.  A program using the Python API calls
``lieq.retain_freed_memory()`` once at start, or sets ``LIEQ_RETAIN_MEMORY=1``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["ENV_VAR", "apply_if_requested", "is_applied", "retain_freed_memory"]

#: ``1``: ``import lieq`` applies the settings; ``0``: they are never applied (not even by the entry points).
ENV_VAR = "LIEQ_RETAIN_MEMORY"

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: bool | None = None  # None: not asked yet in this process; then whether the settings are in effect


def retain_freed_memory() -> bool:
    """Apply the ``malloc`` settings above once per process (unless ``LIEQ_RETAIN_MEMORY=0``); returns whether they
    are in effect."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get(ENV_VAR, "1") != "0" and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _applied = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
            except (OSError, AttributeError):  # not glibc
                pass
    return _applied


def apply_if_requested() -> bool:
    """:func:`retain_freed_memory` if the environment asks for it (``LIEQ_RETAIN_MEMORY=1``); returns whether the
    settings are in effect.  Called by ``import lieq``."""
    if os.environ.get(ENV_VAR) == "1":
        return retain_freed_memory()
    return is_applied()


def is_applied() -> bool:
    """Whether this process's ``malloc`` settings were changed by :func:`retain_freed_memory`."""
    return bool(_applied)
