"""Hyperparameter suggestions: what to train with, from the model's size, the data and the method, each with the
one-line reason a person can check.

The rules are the field's common practice, written so that they move the right way: a bigger model never gets a
higher learning rate, more data never gets more epochs, more data may get a higher LoRA rank. Memory-bound choices
(micro-batches, activation checkpointing, max_seq_len) are planning.defaults'; this module picks what the run
learns with.
"""

from __future__ import annotations

import math

import msgspec

from hone.types import PlanChoice

LORA_BASE_LR, FULL_BASE_LR = 2e-4, 2e-5
"""At 1B parameters: the LoRA and full fine-tuning learning rates most recipes use at that size."""


class DataFacts(msgspec.Struct, frozen=True):
    examples: int
    mean_tokens: float
    longest: int


def _size(parameters: int) -> str:
    return f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.0f}M"


def learning_rate(parameters: int, adapter: str) -> float:
    """Smaller models take larger steps: the 1B rate scaled by (1B / size)^0.5, within a factor of 5 of it."""
    base = FULL_BASE_LR if adapter == "full" else LORA_BASE_LR
    scaled = base * math.sqrt(1e9 / max(parameters, 1))
    return float(f"{min(max(scaled, base / 5), base * 5):.2g}")


def epochs(examples: int) -> int:
    """Small sets need several passes to be learnt; big ones overfit on many (never more epochs for more data)."""
    return 3 if examples <= 1_000 else 2 if examples <= 10_000 else 1


def lora_rank(examples: int, mean_tokens: float) -> int:
    """Capacity for what the data has to teach: a few thousand examples fit in rank 8-16 (the LoRA paper's ranks
    of 4-8 already match full fine-tuning on most tasks); tens of thousands of long examples earn 32."""
    tokens = examples * mean_tokens
    return 8 if tokens < 50_000 else 16 if tokens < 2_000_000 else 32


def batch_size(examples: int) -> int:
    """8 examples a step, fewer only when there are fewer examples (every step should see a real batch)."""
    return max(1, min(8, examples))


def suggest(parameters: int, adapter: str, data: DataFacts) -> list[PlanChoice]:
    """Every hyperparameter honed would pick for this model, method and data, with its reason."""
    lr = learning_rate(parameters, adapter)
    n_epochs = epochs(data.examples)
    batch = batch_size(data.examples)
    steps = n_epochs * math.ceil(data.examples / batch)
    method = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}[adapter]
    what = f"{method} on a {_size(parameters)} model"
    choices = [
        PlanChoice("learning_rate", lr, f"lr {lr:g}: {what} with {data.examples:,} examples (smaller models take "
                   f"larger steps: {FULL_BASE_LR if adapter == 'full' else LORA_BASE_LR:g} at 1B, x sqrt(1B/size))"),
        PlanChoice("n_epochs", n_epochs, f"{n_epochs} epoch{'s' * (n_epochs > 1)}: {data.examples:,} examples "
                   f"({'few enough to need several passes' if n_epochs == 3 else 'enough that more passes overfit'})"),
        PlanChoice("batch_size", batch, f"batch {batch}: {steps} optimizer steps in all"
                   + ("" if batch == 8 else f" (only {data.examples} examples)")),
        PlanChoice("warmup_ratio", 0.05 if steps >= 100 else 0.1,
                   f"warmup {5 if steps >= 100 else 10}%: {steps} steps "
                   + ("(the usual 5%)" if steps >= 100 else "(a short run needs a few steps of warm-up)")),
    ]
    if adapter != "full":
        rank = lora_rank(data.examples, data.mean_tokens)
        tokens = data.examples * data.mean_tokens
        choices += [
            PlanChoice("lora_rank", rank, f"rank {rank}: {tokens:,.0f} training tokens"),
            PlanChoice("lora_alpha", 2.0 * rank, f"alpha {2 * rank}: 2 x rank, so the update's scale does not "
                       "change with the rank"),
            PlanChoice("lora_dropout", 0.1 if data.examples < 500 else 0.05,
                       f"dropout {0.1 if data.examples < 500 else 0.05}: "
                       + ("a small set overfits easily" if data.examples < 500 else "the common default")),
            PlanChoice("target_modules", None, "every linear layer in the blocks: adapters on all of them match "
                       "full fine-tuning more closely than attention-only (QLoRA paper)"),
        ]
    return choices
