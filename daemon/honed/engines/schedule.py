"""What both engines' training loops share, free of any array library: which examples form each step (the
same batches for the same seed, so a resumed run continues exactly), the learning-rate schedule, and the loss
spike watch. Keeping it in one place is what makes an MLX run and a torch run of the same job comparable."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from honed.data.tokenize import IGNORE, TokenizedExample
from honed.engines.base import TrainConfig

PAD_MULTIPLE = 8
"""Batches are padded to a multiple of this many tokens (friendlier matrix shapes, fewer distinct shapes)."""


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indices for one epoch, grouped by similar length to waste little on padding.

    Deterministic in (seed, epoch), so step k of a run is always the same batch: that is what lets a
    resumed run continue exactly where the checkpoint left off.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16  # sort within windows: length-grouping without a fixed curriculum
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class LossWatch:
    """Says when the training loss jumps far above the lowest it has been (a learning rate too high, a bad
    batch): once per episode, so a run that diverges warns once, not every step."""

    def __init__(self, warmup_steps: int, factor: float = 3.0) -> None:
        self.warmup_steps, self.factor = warmup_steps, factor
        self.minimum = math.inf
        self.spiking = False

    def observe(self, step: int, loss: float) -> str | None:
        self.minimum = min(self.minimum, loss)
        high = step > self.warmup_steps and loss > self.factor * self.minimum
        warn = high and not self.spiking
        self.spiking = high
        if not warn:
            return None
        return (f"Loss spiked to {loss:.4f} at step {step}, over {self.factor:g}x its lowest so far "
                f"({self.minimum:.4f}); if it keeps rising, lower the learning rate")


def labelled_count(example: TokenizedExample) -> int:
    """Positions the loss is computed on (labels are shifted by one: the first token is never predicted)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE)


def micro_batches(indices: list[int], accumulation: int) -> list[list[int]]:
    size = math.ceil(len(indices) / accumulation)
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def validation_losses(validated: dict[str, Any]) -> dict[str, Any]:
    return {k: validated[k] for k in ("valid_loss", "valid_mean_token_accuracy") if k in validated}


def lr_factor(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))  # cosine to zero

    return factor


def step_stream(lengths: list[int], config: TrainConfig, start_step: int,
                 total_steps: int) -> Iterator[tuple[int, float, list[int]]]:
    """(step, fractional epoch, batch indices) from start_step on."""
    step = 0
    for epoch in range(config.n_epochs):
        batches = epoch_batches(lengths, config.batch_size, config.seed, epoch)
        for index, batch in enumerate(batches):
            if step >= total_steps:
                return
            if step >= start_step:
                yield step, epoch + (index + 1) / len(batches), batch
            step += 1
