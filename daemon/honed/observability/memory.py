"""This process's memory, as the OS reports it, for metrics events and /metrics."""

from __future__ import annotations

import os
import resource
import sys


def peak_bytes() -> int:
    """The most resident memory this process has had (ru_maxrss: bytes on macOS, KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def resident_bytes() -> int:
    """Current resident memory on Linux (/proc); elsewhere the peak, the closest the OS reports cheaply."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_bytes()
