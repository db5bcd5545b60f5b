"""Supervised fine-tuning with PyTorch (transformers + peft): one plain training loop.

Why a loop of our own rather than HF's Trainer: the worker must stop within one step on cancel, report every
step as an event, resume exactly (optimizer, schedule and data position) from a checkpoint, and compute the
loss only where it counts: hidden states of assistant positions go through the output head, so the full
[batch x seq x vocab] logits (49k wide for SmolLM2) are never materialised.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from honed.data.tokenize import IGNORE, TokenizedExample, pack_examples
from honed.engines.base import TrainCallbacks, TrainConfig, TrainResult
from honed.engines.schedule import (PAD_MULTIPLE, StepReport, at_step_end, checkpoint_directory, early_stopper,
                                    finish_run, labelled_count, lr_factor, micro_batches, out_of_time,
                                    step_stream)
from honed.engines.torch_threads import process_governor
from honed.errors import HonedError
from honed.models.trust import model_load_options, tokenizer_load_options
from honed.observability.memory import peak_bytes, resident_bytes
from honed.planning.hardware import cpu_cores

STATE_FILE = "trainer_state.pt"
QLORA_NEEDS_MLX = ("QLoRA (LoRA on a 4-bit base) runs on the MLX engine: set honed.engine to 'mlx' (Apple Silicon, "
                   "or mlx[cpu] elsewhere), or use honed.adapter 'lora'")


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------ batches


def collate(examples: list[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    width = int(math.ceil(width / PAD_MULTIPLE) * PAD_MULTIPLE)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    packed = examples[0].positions is not None
    positions = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
        if packed:  # the padding after a packed row restarts at 0 too: one more sequence that nothing sees
            positions[row, :n] = torch.tensor(example.positions)
            positions[row, n:] = torch.arange(width - n)
    batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if packed:
        batch["position_ids"] = positions
    return batch


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the model is called with. Packed rows pass position ids and no attention mask: transformers then
    builds a mask in which each example of a row sees only itself. No KV cache: training never reuses one."""
    if "position_ids" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}


# --------------------------------------------------------------------------------------------- loss


def _head_and_body(model: Any) -> tuple[Any, Any] | None:
    """(transformer body, output head) of a causal LM, looking through a peft wrapper, if it has them."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = getattr(inner, "model", None), getattr(inner, "lm_head", None)
    return (body, head) if body is not None and head is not None else None


def masked_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over labelled (assistant) tokens; also (correct predictions, labelled tokens)."""
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    parts = _head_and_body(model)
    if parts is not None:
        body, head = parts
        hidden = body(**model_inputs(batch)).last_hidden_state
        logits = head(hidden[:, :-1][keep]).float()
    else:  # an architecture without the usual body/head split: pay for the full logits
        logits = model(**model_inputs(batch)).logits
        logits = logits[:, :-1][keep].float()
    targets = labels[keep]
    loss = F.cross_entropy(logits, targets)
    correct = int((logits.argmax(-1) == targets).sum())
    return loss, correct, int(targets.numel())


@torch.no_grad()
def evaluate(model: Any, examples: list[TokenizedExample], batch_size: int, pad_id: int,
             device: torch.device) -> dict[str, float]:
    """Token-weighted loss and accuracy over examples (the validation split)."""
    model.eval()
    total_loss, total_correct, total_tokens = 0.0, 0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        batch = collate([examples[i] for i in order[start:start + batch_size]], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        loss, correct, tokens = masked_loss(model, batch)
        if tokens:
            total_loss += float(loss) * tokens
            total_correct += correct
            total_tokens += tokens
    model.train()
    if not total_tokens:
        return {}
    return {"valid_loss": total_loss / total_tokens, "valid_mean_token_accuracy": total_correct / total_tokens}


# -------------------------------------------------------------------------------------------- model


def load_for_training(config: TrainConfig, device: torch.device) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.adapter == "qlora":
        raise HonedError(QLORA_NEEDS_MLX)
    tokenizer = AutoTokenizer.from_pretrained(config.model_dir, **tokenizer_load_options())
    model = AutoModelForCausalLM.from_pretrained(config.model_dir, dtype=weights_dtype(config, device),
                                                 **model_load_options(config.model_dir))
    model.config.use_cache = False
    if config.gradient_checkpointing:
        # non-reentrant: works with frozen inputs (LoRA), so no input-grad hook is needed
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if config.adapter == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules or "all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    model.to(device)
    model.train()
    return model, tokenizer


def weights_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 weights only for a frozen base on a GPU (peft keeps the adapter itself in fp32). Weights that are
    trained stay fp32 masters: AdamW's small updates round away in bf16 (measured on an H100: full fine-tuning
    of the tiny model with bf16 weights barely moved its loss, 8.72 -> 8.78, where fp32 masters reached 7.72)."""
    frozen_base = config.adapter != "full"
    return torch.bfloat16 if config.precision == "bf16" and device.type != "cpu" and frozen_base else torch.float32


def autocast(config: TrainConfig, device: torch.device):
    """bf16 compute over fp32 weights wherever the weights themselves are not bf16."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=config.precision == "bf16" and weights_dtype(config, device) == torch.float32)


def memory_usage(device: torch.device) -> dict[str, int]:
    """The process's resident and peak memory, and the accelerator's, in bytes (for metrics events)."""
    usage = {"memory_rss": resident_bytes(), "memory_peak": peak_bytes()}
    if device.type == "cuda":
        usage["device_memory"] = torch.cuda.memory_allocated(device)
        usage["device_memory_peak"] = torch.cuda.max_memory_allocated(device)
    elif device.type == "mps":
        usage["device_memory"] = torch.mps.current_allocated_memory()
    return usage


def _latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    found = [p for p in checkpoints_dir.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def _save_weights(model: Any, tokenizer: Any, directory: Path) -> None:
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def _restore_weights(model: Any, directory: Path, adapter: str) -> None:
    from safetensors.torch import load_file

    if adapter != "full":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))
    else:
        state = {}
        for shard in directory.glob("*.safetensors"):
            state.update(load_file(shard))
        model.load_state_dict(state, strict=False)


# --------------------------------------------------------------------------------------------- train


def train(config: TrainConfig, train_set: list[TokenizedExample], valid_set: list[TokenizedExample],
          callbacks: TrainCallbacks) -> TrainResult:
    """Run (or resume) one fine-tuning run; returns when done, stopped, or raises on failure."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    governor = process_governor() if device.type == "cpu" else None
    if governor is None:
        torch.set_num_threads(cpu_cores())
    model, tokenizer = load_for_training(config, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if config.packing:
        rows = pack_examples(train_set, config.max_seq_len)
        callbacks.event("log", f"Packed {len(train_set)} examples into {len(rows)} rows of up to "
                        f"{config.max_seq_len} tokens", {"examples": len(train_set), "rows": len(rows)})
        train_set = rows

    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.n_epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup_steps = max(1, int(total_steps * config.warmup_ratio))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(total_steps, warmup_steps))

    checkpoints_dir = config.output_dir / "checkpoints"
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    start_step, trained_tokens = 0, 0
    resume_from = _latest_checkpoint(checkpoints_dir)
    if resume_from is not None:
        state = torch.load(resume_from / STATE_FILE, weights_only=True)
        _restore_weights(model, resume_from, config.adapter)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, trained_tokens = int(state["step"]), int(state["trained_tokens"])
        torch.set_rng_state(state["rng"])
        callbacks.event("log", f"Resumed from checkpoint at step {start_step}", {"step": start_step})

    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    callbacks.event("log", f"Training {trainable:,} of {total:,} parameters on {device.type} for {total_steps} steps",
                    {"trainable_parameters": trainable, "total_parameters": total, "device": device.type,
                     "total_steps": total_steps, "examples": len(train_set)})

    lengths = [len(e.input_ids) for e in train_set]
    label_counts = [labelled_count(e) for e in train_set]
    report = StepReport(config, callbacks.event, total_steps, warmup_steps, trained_tokens)
    stopper = early_stopper(config, start_step)
    started = time.monotonic()
    step, stopped, early_stopped = start_step, None, None

    def validate(at_step: int) -> dict[str, Any]:
        """Validation loss and the probe's task metric on the live model, announced as one eval event."""
        if not valid_set and callbacks.probe is None:
            return {}
        with autocast(config, device):
            found: dict[str, Any] = evaluate(model, valid_set, config.batch_size, pad_id, device) if valid_set else {}
        task: dict[str, float] = {}
        if callbacks.probe is not None:
            model.eval()
            try:
                task = callbacks.probe(model, tokenizer, at_step)
            finally:
                model.train()
        parts = [f"validation loss {found['valid_loss']:.4f}"] if "valid_loss" in found else []
        parts += [f"{name} {value:.3f}" for name, value in task.items()]
        if parts:  # a probe that only sampled has nothing to report here
            callbacks.event("eval", f"Step {at_step}: " + ", ".join(parts),
                            {"phase": "validation", "step": at_step, **found, "task": task})
        return {**found, "task": task}

    def save_checkpoint(at_step: int, metrics: dict[str, Any]) -> None:
        with checkpoint_directory(checkpoints_dir, at_step) as partial:
            _save_weights(model, tokenizer, partial)
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": at_step,
                        "trained_tokens": report.trained_tokens, "rng": torch.get_rng_state()}, partial / STATE_FILE)
        callbacks.checkpoint(at_step, checkpoints_dir / f"step-{at_step}", metrics)

    for step_index, epoch, indices in step_stream(lengths, config, start_step, total_steps):
        reason = callbacks.should_stop()
        if reason:
            stopped = reason
            break
        if governor is not None:
            governor.adjust(callbacks.event)
        # micro-batches weighted by their share of labelled tokens: the same update as one big batch
        total_labelled = max(1, sum(label_counts[i] for i in indices))
        value, correct, labelled, tokens = 0.0, 0, 0, 0
        for part in micro_batches(indices, config.gradient_accumulation):
            batch = collate([train_set[i] for i in part], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(config, device):
                loss, part_correct, part_labelled = masked_loss(model, batch)
            if part_labelled:  # an empty mean is NaN, and NaN x 0 is still NaN
                (loss * (part_labelled / total_labelled)).backward()
            value += loss.item() * part_labelled / total_labelled
            correct, labelled = correct + part_correct, labelled + part_labelled
            tokens += int(batch["attention_mask"].sum())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        step = step_index + 1
        report.step(step, epoch, value, correct, labelled, tokens, lambda: {
            "learning_rate": scheduler.get_last_lr()[0], "grad_norm": grad_norm, **memory_usage(device)})
        early_stopped = at_step_end(step, total_steps, value, config, validate, save_checkpoint, stopper)
        if early_stopped is not None or out_of_time(config, started, step, total_steps, report):
            break

    return finish_run(config, step, start_step, total_steps, stopped, report, validate, save_checkpoint,
                      (STATE_FILE,), stopper, early_stopped)
