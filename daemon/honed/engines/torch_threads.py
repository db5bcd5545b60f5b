"""How many threads CPU training steps and evaluation answers use: the cores other programs leave free.

OpenMP splits each operation evenly over its threads and every operation waits for the slowest. When another
program holds one of the cores, the thread on that core gets a sliver of it (the worker is niced) and the whole
step crawls; the threads that finished first also spin while they wait, if they spin. Working on the free cores
only keeps a step at the speed of the cores it has, and lets the worker's threads spin briefly while waiting
(much faster on an idle machine, see native_runtime.py) without a spinning thread ever sharing a core with the
person's own programs.

One governor per process (`process_governor()`): torch's thread count is the process's, and a job that starts
while the machine is busy starts from what the jobs before it found rather than from every core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from honed.observability.cpu_load import OtherLoad
from honed.planning.hardware import cpu_cores

Event = Callable[[str, str, dict[str, Any]], None]


def threads_for(cores: int, others: float) -> int:
    """Threads for `cores` usable cores while other programs keep `others` cores busy."""
    return max(1, min(cores, round(cores - others)))


class ThreadGovernor:
    """Called between steps: sets torch's thread count to the cores others leave free. Fewer threads as soon as
    one window shows the cores taken (a step on a shared core costs several idle steps); more only after two
    windows in a row show them free (a program pausing between bursts is not gone)."""

    def __init__(self, cores: int | None = None, sample: Callable[[], float] | None = None,
                 machine_cores: int | None = None, window_s: float = 2.0) -> None:
        load = None if sample is not None else OtherLoad()
        self.sample = sample or load.sample
        self.machine_cores = machine_cores or (load.cores if load is not None else cpu_cores())
        self.cores, self.window_s = cores or cpu_cores(), window_s
        self._checked = time.monotonic()
        self._rising: int | None = None
        torch.set_num_threads(self.cores)

    def adjust(self, event: Event) -> int:
        """Re-decide once per window (announcing a change through `event`); returns the threads now used."""
        current = torch.get_num_threads()
        if time.monotonic() - self._checked < self.window_s:
            return current  # a shorter window measures noise
        self._checked = time.monotonic()
        others = self.sample() * self.machine_cores
        wanted = threads_for(self.cores, others)
        if wanted > current and self._rising != wanted:
            self._rising = wanted
            return current
        self._rising = None
        if wanted != current:
            torch.set_num_threads(wanted)
            event("log", f"Other programs use {others:.1f} of {self.machine_cores} cores: working on "
                  f"{wanted} thread{'s' if wanted > 1 else ''}", {"kind": "threads", "threads": wanted,
                                                                  "other_cores": others})
        return wanted


_governor: ThreadGovernor | None = None


def process_governor() -> ThreadGovernor:
    """This process's governor, made at first use (its first window starts then)."""
    global _governor
    if _governor is None:
        _governor = ThreadGovernor()
    return _governor
