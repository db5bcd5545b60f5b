"""The engine seam: what the worker and the server need from a training/generation backend.

One protocol, small implementations (torch today; MLX and llama.cpp behind the same calls). The worker
hands an engine a `TrainConfig` and examples and hears back through `TrainCallbacks`; the server asks for
tokens one at a time so it can stream, stop on strings and count usage itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from honed.data.tokenize import TokenizedExample


class StopRule(msgspec.Struct, frozen=True):
    """Early stopping, resolved: which validation value, which way is better, how long to wait for it."""

    metric: str = "valid_loss"
    """valid_loss, or a task metric the validation probe reports."""
    patience: int = 3
    min_delta: float = 0.0
    higher_is_better: bool = False


class TrainConfig(msgspec.Struct, frozen=True):
    """Everything one training run needs, resolved (no "auto" left)."""

    model_dir: Path
    """A local HF directory holding the base model."""
    output_dir: Path
    """The job's directory: checkpoints/ and the final adapter/ (or model/) go here."""
    adapter: Literal["lora", "qlora", "full"] = "lora"
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    """None: every linear layer inside the transformer blocks (not the output head)."""
    learning_rate: float = 2e-4
    n_epochs: int = 3
    batch_size: int = 8
    max_steps: int | None = None
    max_seconds: float | None = None
    """Training time after which the step reached becomes the last (see schedule.out_of_time)."""
    checkpoint_interval: int = 50
    eval_interval: int | None = None
    """Validate (loss on the validation split, plus the probe) every this many steps; None: at checkpoints."""
    packing: bool = False
    """Pack short training examples into rows of up to max_seq_len tokens (each still sees only itself)."""
    max_seq_len: int = 512
    gradient_accumulation: int = 1
    """Each batch runs as this many micro-batches before one optimizer step (same update, less memory)."""
    gradient_checkpointing: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """bf16: a LoRA job's frozen base in bf16 on a GPU; otherwise bf16 autocast over fp32 weights."""
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    early_stopping: StopRule | None = None
    """Stop when validation stops improving; the final adapter is then the best validated checkpoint."""
    divergence_factor: float = 10.0
    """Fail when the smoothed training loss exceeds this many times its lowest and where it started (0: only
    NaN/inf fails)."""
    logging_interval: int = 1
    device: str = "auto"


class TrainResult(msgspec.Struct, frozen=True):
    steps: int
    total_steps: int
    trained_tokens: int
    final_loss: float | None
    output_path: Path
    """The final adapter directory (or full model directory)."""
    stopped: str | None = None
    """Why training ended without a model (e.g. "cancelled", "paused"), or None when it has one."""
    best_step: int | None = None
    """With early stopping: the validated step whose weights are the final adapter (or model)."""
    early_stopped: str | None = None
    """With early stopping: why training ended before its last step (None when it ran to the end)."""


class TrainCallbacks(msgspec.Struct, frozen=True):
    """How a training run talks to the world, without knowing about the store or HTTP."""

    event: Callable[[str, str, dict[str, Any]], None]
    """event(type, message, data): metrics, warnings, logs."""
    checkpoint: Callable[[int, Path, dict[str, Any]], None]
    """checkpoint(step, directory, metrics) after a resumable checkpoint is fully written."""
    should_stop: Callable[[], str | None]
    """Polled once per step; a non-None reason stops training after the current step."""
    probe: Callable[[Any, Any, int], dict[str, float]] | None = None
    """probe(model, tokenizer, step) at each validation point: a quick task metric on the live model (in eval
    mode), and a sample answer."""


class GenerationParams(msgspec.Struct, frozen=True):
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_logprobs: int = 0


class GeneratedToken(msgspec.Struct, frozen=True):
    id: int
    logprob: float
    top: list[tuple[int, float]] | None = None


class Engine(Protocol):
    name: str

    def train(self, config: TrainConfig, train: list[TokenizedExample], valid: list[TokenizedExample],
              callbacks: TrainCallbacks) -> TrainResult: ...

    def generate(self, model: Any, prompt_ids: list[int], params: GenerationParams,
                 stop_ids: set[int]) -> Iterator[GeneratedToken]: ...
