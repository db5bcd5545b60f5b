"""The settings honed fills in for a job that leaves them unset, each with a one-line reason.

Inputs are facts: the machine (hardware), the model's size (model_shape), the training examples' token
lengths and the batch size the job asked for. Output is the job's options with nothing left to "auto".
"""

from __future__ import annotations

import math

import msgspec

from hone.types import Hardware, HonedOptions, PlanChoice
from honed.errors import InvalidRequest
from honed.planning.hardware import training_memory_budget
from honed.planning.memory import training_bytes, weight_bytes_per_parameter
from honed.planning.model_shape import ModelShape

LENGTH_STEP = 64
LONGEST_DEFAULT = 4096
"""The longest max_seq_len honed picks by itself: longer is the user's call (memory grows with it)."""


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def resolve_engine(requested: str) -> str:
    from honed.engines import default_engine_name

    return default_engine_name() if requested == "auto" else requested


class Plan(msgspec.Struct, frozen=True):
    engine: str
    options: HonedOptions
    """Every field the job left unset, filled in."""
    choices: list[PlanChoice]
    estimated_bytes: int
    budget_bytes: int


def check_gradient_accumulation(accumulation: int, batch_size: int, batch_chosen: bool = False) -> None:
    """Each micro-batch needs at least one example. Checked when a job is created (jobs/spec.py) and again when
    it is planned, for specs stored before the first check existed."""
    if accumulation > batch_size:
        chosen = ", chosen from the training file" if batch_chosen else ""
        raise InvalidRequest(f"honed.gradient_accumulation ({accumulation}) cannot exceed the batch size "
                             f"({batch_size}{chosen}): each micro-batch needs at least one example",
                             param="honed.gradient_accumulation")


def plan_options(options: HonedOptions, *, hardware: Hardware, shape: ModelShape, lengths: list[int],
                 batch_size: int) -> Plan:
    """Fill the unset options of a job. Raises InvalidRequest when what was asked cannot work here."""
    engine = resolve_engine(options.engine)
    budget = training_memory_budget(hardware)
    choices: list[PlanChoice] = []
    if options.engine == "auto":
        choices.append(PlanChoice("engine", engine, "mlx: Apple Silicon with Metal" if engine == "mlx" else
                                  f"torch: PyTorch on {hardware.device} (MLX is the default on Apple Silicon)"))

    precision = options.precision
    if precision == "auto":
        if hardware.device == "cuda":
            precision = "bf16" if hardware.bf16 else "fp32"
            reason = "bf16: this GPU computes it natively" if hardware.bf16 else "fp32: this GPU has no bf16"
        elif engine == "mlx":
            precision, reason = "bf16", "bf16: MLX on Apple Silicon trains LoRA in bf16 with fp32 adapter weights"
        else:
            precision, reason = "fp32", f"fp32: the safe choice on {hardware.device}"
        choices.append(PlanChoice("precision", precision, reason))
    elif precision == "fp16" and engine == "torch":
        raise InvalidRequest("precision 'fp16' needs loss scaling the torch engine does not do; use 'bf16' or "
                             "'fp32'", param="honed.precision")

    adapter = options.adapter
    base_bytes = shape.parameters * weight_bytes_per_parameter("lora", precision)
    if adapter is None:
        if base_bytes > 0.5 * budget and engine == "mlx":
            adapter = "qlora"
            reason = (f"QLoRA: the {_params(shape.parameters)} base needs {_gb(base_bytes)} at {precision}, over half "
                      f"of the {_gb(budget)} this machine can spare; 4-bit cuts it to a quarter")
        else:
            adapter = "lora"
            reason = (f"LoRA: the {_params(shape.parameters)} base ({_gb(base_bytes)} at {precision}) fits in the "
                      f"{_gb(budget)} this machine can spare; an adapter trains fast and is served hot-loaded")
        choices.append(PlanChoice("adapter", adapter, reason))
    if adapter == "qlora" and engine != "mlx":
        raise InvalidRequest("QLoRA (LoRA on a 4-bit base) runs on the MLX engine: set honed.engine to 'mlx' "
                             "(Apple Silicon, or mlx[cpu] elsewhere), or use honed.adapter 'lora'",
                             param="honed.adapter")

    longest = max(lengths, default=1)
    context = min(shape.max_positions, 32768)
    max_seq_len = options.max_seq_len
    if max_seq_len is None:
        max_seq_len = min(math.ceil(longest / LENGTH_STEP) * LENGTH_STEP, context, LONGEST_DEFAULT)
        cut = sum(n > max_seq_len for n in lengths)
        reason = (f"{max_seq_len}: the longest training example has {longest} tokens"
                  + (f"; {cut} longer ones are cut (raise it to keep them whole)" if cut else ""))
        choices.append(PlanChoice("max_seq_len", max_seq_len, reason))
    seq_len = min(max_seq_len, math.ceil(longest / 8) * 8)  # the widest batch the data can make

    def needs(micro_batch: int, checkpointing: bool) -> int:
        return training_bytes(shape, adapter=adapter, precision=precision, rank=options.lora_rank,
                              micro_batch=micro_batch, seq_len=seq_len, checkpointing=checkpointing,
                              targets=options.target_modules)

    checkpointing = options.gradient_checkpointing
    accumulation = options.gradient_accumulation
    if accumulation is None:
        accumulation = 1
        while accumulation < batch_size and needs(math.ceil(batch_size / accumulation), bool(checkpointing)) > budget:
            accumulation *= 2
        accumulation = min(accumulation, batch_size)
        micro = math.ceil(batch_size / accumulation)
        reason = (f"1: a batch of {batch_size} x {seq_len} tokens fits in memory" if accumulation == 1 else
                  f"{accumulation}: micro-batches of {micro} keep activations within {_gb(budget)}")
        choices.append(PlanChoice("gradient_accumulation", accumulation, reason))
    else:
        check_gradient_accumulation(accumulation, batch_size)
    micro = math.ceil(batch_size / accumulation)
    if checkpointing is None:
        checkpointing = needs(micro, False) > budget
        reason = (f"on: without it a micro-batch needs {_gb(needs(micro, False))}, more than {_gb(budget)}"
                  if checkpointing else f"off: activations fit ({_gb(needs(micro, False))} of {_gb(budget)}), "
                  "and recomputing them would cost a third more time")
        choices.append(PlanChoice("gradient_checkpointing", checkpointing, reason))
    resolved = msgspec.structs.replace(options, engine=engine, adapter=adapter, precision=precision,
                                       max_seq_len=max_seq_len, gradient_accumulation=accumulation,
                                       gradient_checkpointing=checkpointing)
    return Plan(engine, resolved, choices, needs(micro, checkpointing), budget)
