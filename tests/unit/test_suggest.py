"""Suggested hyperparameters move the right way as the model and the data grow, and say why."""

from __future__ import annotations

import pytest

from honed.planning.suggest import DataFacts, epochs, learning_rate, lora_rank, suggest

SIZES = [3_700_000, 135_000_000, 360_000_000, 500_000_000, 1_000_000_000, 3_000_000_000, 8_000_000_000]
COUNTS = [4, 50, 200, 999, 1_000, 1_001, 5_000, 10_001, 100_000]


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_a_bigger_model_never_gets_a_higher_learning_rate(adapter):
    rates = [learning_rate(n, adapter) for n in SIZES]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]
    assert learning_rate(1_000_000_000, adapter) == {"lora": 2e-4, "full": 2e-5}[adapter]


def test_more_data_never_gets_more_epochs_and_may_get_more_rank():
    assert [epochs(n) for n in COUNTS] == sorted((epochs(n) for n in COUNTS), reverse=True)
    ranks = [lora_rank(n, 100.0) for n in COUNTS]
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1]


def test_each_suggestion_has_a_reason_naming_its_inputs():
    found = {c.field: c for c in suggest(500_000_000, "lora", DataFacts(1_200, 180.0, 400))}
    assert found["learning_rate"].reason == ("lr 0.00028: LoRA on a 500M model with 1,200 examples (smaller models "
                                             "take larger steps: 0.0002 at 1B, x sqrt(1B/size))")
    assert found["n_epochs"].value == 2 and "1,200 examples" in found["n_epochs"].reason
    assert found["lora_alpha"].value == 2 * found["lora_rank"].value
    assert found["batch_size"].value == 8 and found["warmup_ratio"].value == 0.05  # 300 steps
    full = {c.field for c in suggest(500_000_000, "full", DataFacts(10, 20.0, 30))}
    assert "lora_rank" not in full and {"learning_rate", "n_epochs", "batch_size"} <= full
    tiny = {c.field: c.value for c in suggest(135_000_000, "lora", DataFacts(5, 20.0, 30))}
    assert tiny["batch_size"] == 5 and tiny["warmup_ratio"] == 0.1
