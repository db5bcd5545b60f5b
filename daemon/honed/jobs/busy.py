"""Yield to the person at the keyboard: training waits between steps while other programs keep the CPU busy.

Niceness already gives other programs the CPU first, but a training step still takes memory bandwidth and
cache, and a laptop under two heavy loads runs hot. With HONED_YIELD_WHEN_BUSY set, the worker pauses between
steps while everything else uses more than that share of the machine, and carries on when it is quiet again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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
        self._cores = os.cpu_count() or 1
        self._last = (_cpu_jiffies(), _own_cpu_seconds(), time.monotonic())

    def sample(self) -> float:
        jiffies, own, wall = _cpu_jiffies(), _own_cpu_seconds(), time.monotonic()
        (last_jiffies, last_own, last_wall), self._last = self._last, (jiffies, own, wall)
        own_share = (own - last_own) / max(1e-9, (wall - last_wall) * self._cores)
        if jiffies is None or last_jiffies is None:
            # no /proc (macOS): the 1-minute load average is the best cheap signal; it lags, which is fine here
            return min(1.0, max(0.0, os.getloadavg()[0] / self._cores - own_share))
        busy, total = jiffies[0] - last_jiffies[0], jiffies[1] - last_jiffies[1]
        if total <= 0:
            return 0.0
        return min(1.0, max(0.0, (busy - (own - last_own) * self._tick) / total))


class BusyGate:
    """Called between steps: returns at once while the machine is quiet; while it is busy, announces it once,
    waits (still listening for cancel/pause via `stopped`), and announces when training carries on."""

    def __init__(self, threshold: float, event: Callable[..., None], stopped: Callable[[], bool],
                 sample: Callable[[], float] | None = None, poll_s: float = 2.0) -> None:
        self.threshold, self.event, self.stopped, self.poll_s = threshold, event, stopped, poll_s
        self.sample = sample or OtherLoad().sample
        self._checked = time.monotonic()

    def wait_while_busy(self) -> None:
        if time.monotonic() - self._checked < self.poll_s:
            return  # sampling every step would measure too short a window to mean anything
        self._checked = time.monotonic()
        load = self.sample()
        if load <= self.threshold:
            return
        self.event("log", f"The machine is busy (other programs use {load:.0%} of the CPU): training waits",
                   {"kind": "yield", "other_cpu": load, "threshold": self.threshold})
        waited = time.monotonic()
        quiet = 0
        while quiet < 2 and not self.stopped():  # two quiet samples in a row: not just a pause between bursts
            time.sleep(self.poll_s)
            load = self.sample()
            quiet = quiet + 1 if load <= self.threshold else 0
        self._checked = time.monotonic()
        self.event("log", f"Training continues after waiting {time.monotonic() - waited:.0f} s for the machine",
                   {"kind": "resume_after_yield", "waited_s": time.monotonic() - waited, "other_cpu": load})
