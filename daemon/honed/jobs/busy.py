"""Yield to the person at the keyboard: training waits between steps while other programs keep the CPU busy.

Niceness already gives other programs the CPU first, but a training step still takes memory bandwidth and
cache, and a laptop under two heavy loads runs hot. With HONED_YIELD_WHEN_BUSY set, the worker pauses between
steps while everything else uses more than that share of the machine, and carries on when it is quiet again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from honed.observability.cpu_load import OtherLoad


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
