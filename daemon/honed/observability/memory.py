"""This process's memory, as the OS reports it, for metrics events and /metrics."""

from __future__ import annotations

import os
import resource
import sys


def peak_bytes() -> int:
    """The most resident memory this process has had since reset_peak() (Linux VmHWM) or since it started
    (ru_maxrss elsewhere: bytes on macOS)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak() -> bool:
    """Start peak_bytes() over from the current resident size, so a long-lived worker reports each job's own
    peak. Linux only (clear_refs); returns whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def resident_bytes() -> int:
    """Current resident memory on Linux (/proc); elsewhere the peak, the closest the OS reports cheaply."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_bytes()


JEMALLOC_ALL_ARENAS = 4096
"""MALLCTL_ARENAS_ALL: an arena index that names every arena."""


def release_freed() -> None:
    """Give memory this process freed back to the OS (the allocator keeps it for reuse otherwise), so what it
    then measures, or what a later job's peak counts, is not inflated by what earlier work left behind."""
    import ctypes
    import gc

    gc.collect()
    this_process = ctypes.CDLL(None)
    if hasattr(this_process, "mallctl"):  # jemalloc (the worker's, native_runtime.py): purge every arena
        this_process.mallctl(f"arena.{JEMALLOC_ALL_ARENAS}.purge".encode(), None, None, None, ctypes.c_size_t(0))
    if hasattr(this_process, "malloc_zone_pressure_relief"):  # macOS: every zone gives back what it can
        this_process.malloc_zone_pressure_relief(None, ctypes.c_size_t(0))
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass
