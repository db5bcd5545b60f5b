"""Yielding to other programs: the CPU share they use (not ours), and waiting while it is high."""

from __future__ import annotations

import time

from honed.jobs.busy import BusyGate
from honed.observability.cpu_load import OtherLoad
from tests.conftest import busy_programs


def test_other_programs_count_and_our_own_work_does_not():
    load = OtherLoad()
    time.sleep(1.0)
    idle = load.sample()  # whatever else runs on the machine now
    until = time.monotonic() + 1.0
    while time.monotonic() < until:  # this process keeps a core busy itself
        pass
    assert load.sample() < idle + 0.25  # a whole core of our own would be +0.5 on 2 cores if it counted
    with busy_programs(2):
        time.sleep(1.5)
        assert load.sample() > 0.6


def test_the_gate_waits_while_busy_and_says_so_once_each_way():
    readings = iter([0.9, 0.8, 0.1, 0.7, 0.2, 0.1])
    events = []
    gate = BusyGate(0.5, lambda kind, message, data: events.append((kind, data["kind"])), lambda: False,
                    sample=lambda: next(readings), poll_s=0.01)
    time.sleep(0.02)
    gate.wait_while_busy()
    # 0.9 starts the wait; it ends only after two quiet samples in a row (0.2, 0.1), not at the first (0.1)
    assert events == [("log", "yield"), ("log", "resume_after_yield")]
    assert next(readings, None) is None


def test_the_gate_lets_a_cancel_through_while_waiting():
    events = []
    stops = iter([False, True])
    gate = BusyGate(0.5, lambda *a: events.append(a), lambda: next(stops), sample=lambda: 1.0, poll_s=0.01)
    time.sleep(0.02)
    gate.wait_while_busy()
    assert len(events) == 2
