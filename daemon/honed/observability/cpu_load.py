"""How much of the machine's CPU other programs use: the worker yields to them (jobs/busy.py) and trains on the
cores they leave free (engines/torch_threads.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat), or None where there is no /proc."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class OtherLoad:
    """The share of the whole machine's CPU (0..1) that processes other than this one used since the last
    sample. This process's own use is subtracted, so training never mistakes itself for the user."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self.cores = os.cpu_count() or 1
        self._last = (_cpu_jiffies(), _own_cpu_seconds(), time.monotonic())

    def sample(self) -> float:
        jiffies, own, wall = _cpu_jiffies(), _own_cpu_seconds(), time.monotonic()
        (last_jiffies, last_own, last_wall), self._last = self._last, (jiffies, own, wall)
        own_share = (own - last_own) / max(1e-9, (wall - last_wall) * self.cores)
        if jiffies is None or last_jiffies is None:
            # no /proc (macOS): the 1-minute load average is the best cheap signal; it lags, which is fine here
            return min(1.0, max(0.0, os.getloadavg()[0] / self.cores - own_share))
        busy, total = jiffies[0] - last_jiffies[0], jiffies[1] - last_jiffies[1]
        if total <= 0:
            return 0.0
        return min(1.0, max(0.0, (busy - (own - last_own) * self._tick) / total))
