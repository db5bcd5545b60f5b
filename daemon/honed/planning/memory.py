"""A first-principles model of training memory, good enough to choose settings before anything runs.

The estimate a person sees is calibrated by a measured probe (estimate.py); this model only has to rank
choices (does a micro-batch of 8 fit, or do we need checkpointing) and it errs on the side of fitting.
"""

from __future__ import annotations

from honed.planning.model_shape import ModelShape

RUNTIME_BYTES = 450 * 2**20
"""Python, torch and the tokenizer before any weight is loaded (measured: ~430 MB RSS on Linux x86_64)."""
ADAM_STATE_BYTES = 12
"""fp32 gradient + two AdamW moments per trainable parameter."""
ACTIVATION_FACTOR = 34
"""Bytes per (token x hidden x layer) per byte of precision kept for backward in a Llama block without
recomputation (Korthikanti et al. 2022, without the attention matrix: SDPA does not keep it)."""


def weight_bytes_per_parameter(adapter: str, precision: str) -> float:
    if adapter == "qlora":
        return 0.5 + 0.0625  # 4-bit values plus a 16-bit scale and bias per group of 64
    return 2.0 if precision in ("bf16", "fp16") and adapter != "full" else 4.0


def training_bytes(shape: ModelShape, *, adapter: str, precision: str, rank: int, micro_batch: int, seq_len: int,
                   checkpointing: bool, targets: list[str] | None = None) -> int:
    """Peak bytes of one training process for these settings."""
    weights = shape.parameters * weight_bytes_per_parameter(adapter, precision)
    trainable = shape.parameters if adapter == "full" else shape.lora_parameters(rank, targets)
    optimizer = trainable * (ADAM_STATE_BYTES + (0 if adapter == "full" else 4))
    act_bytes = 2 if precision in ("bf16", "fp16") else 4
    tokens = micro_batch * seq_len
    per_layer = tokens * shape.hidden * act_bytes * ACTIVATION_FACTOR
    activations = (tokens * shape.hidden * act_bytes * shape.layers + per_layer) if checkpointing \
        else per_layer * shape.layers
    head = tokens * shape.vocab * 4 * 3  # logits of the labelled positions, their softmax and its gradient
    return int(RUNTIME_BYTES + weights + optimizer + activations + head)
