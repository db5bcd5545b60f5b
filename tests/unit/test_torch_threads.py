"""Training threads follow the cores other programs leave free."""

from __future__ import annotations

import time

import torch

from honed.engines.torch_threads import ThreadGovernor, threads_for
from honed.planning.hardware import cpu_cores
from tests.conftest import busy_programs


def test_threads_are_the_free_cores_and_at_least_one():
    assert threads_for(2, 0.0) == 2
    assert threads_for(2, 0.3) == 2  # a browser's bursts leave the core to training
    assert threads_for(2, 0.9) == 1
    assert threads_for(8, 2.2) == 6
    assert threads_for(2, 3.5) == 1  # fully taken: one thread still trains (niced)


def test_fewer_threads_at_once_more_only_after_two_quiet_windows():
    readings = iter([0.5, 0.0, 0.5, 0.0, 0.0])  # shares of a 2-core machine: 1 core taken, free, ...
    events = []
    before = torch.get_num_threads()

    def tell(*event):
        events.append(event)

    try:
        governor = ThreadGovernor(cores=2, sample=lambda: next(readings), machine_cores=2, window_s=0.0)
        assert torch.get_num_threads() == 2
        assert governor.adjust(tell) == 1  # taken: at once
        assert governor.adjust(tell) == 1  # one free window: maybe a pause between bursts
        assert governor.adjust(tell) == 1  # taken again: the rise starts over
        assert governor.adjust(tell) == 1
        assert governor.adjust(tell) == 2  # two free windows in a row
        assert torch.get_num_threads() == 2
        assert [e[2]["threads"] for e in events] == [1, 2]
        assert events[0][1] == "Other programs use 1.0 of 2 cores: working on 1 thread"
    finally:
        torch.set_num_threads(before)


def test_busy_programs_on_every_core_leave_training_one_thread():
    before = torch.get_num_threads()
    events = []
    try:
        with busy_programs(cpu_cores()):
            governor = ThreadGovernor(window_s=1.0)
            time.sleep(1.5)
            assert governor.adjust(lambda *e: events.append(e)) == 1 == torch.get_num_threads()
        assert events and events[0][2]["other_cores"] >= cpu_cores() - 0.9
    finally:
        torch.set_num_threads(before)


def test_a_training_run_moves_to_the_free_cores_and_says_so(tiny_model, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from honed.data.example import Example, Message
    from honed.data.tokenize import tokenize_example
    from honed.engines.base import TrainCallbacks, TrainConfig
    from honed.engines.torch_train import train

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = [tokenize_example(tokenizer, Example((Message("user", f"Say {i}"), Message("assistant", f"{i}!")),
                                                    line=i + 1), 64) for i in range(16)]
    events = []

    def moved() -> str | None:
        return "cancelled" if any(e[2].get("kind") == "threads" for e in events) else None

    from honed.engines import torch_threads

    # a fresh process governor (starting on every core), as in a new worker: an earlier test in this process may
    # have left this one's on one thread already
    monkeypatch.setattr(torch_threads, "_governor", None)
    before = torch.get_num_threads()
    try:
        with busy_programs(cpu_cores()):
            config = TrainConfig(model_dir=tiny_model, output_dir=tmp_path, lora_rank=4, n_epochs=100, batch_size=4,
                                 checkpoint_interval=10**6, max_seconds=60)
            result = train(config, examples, [], TrainCallbacks(lambda *e: events.append(e), lambda *a: None, moved))
    finally:
        torch.set_num_threads(before)
    assert result.stopped == "cancelled"  # stopped by the event, not by the time limit
    told = [e for e in events if e[2].get("kind") == "threads"]
    assert told[0][2]["threads"] == 1
