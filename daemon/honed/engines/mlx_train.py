"""Supervised fine-tuning with MLX: mlx-lm's models and LoRA layers, honed's own loop.

The loop is torch_train's, step for step: the same batches (epoch_batches, deterministic in (seed, epoch)), the
same padding, the loss on assistant tokens only, AdamW with warmup then cosine, clipping at max_grad_norm, the
same events, the same checkpoint layout (written whole or not at all) and the same stop/pause/resume rules. What
it writes is what the rest of honed reads: a PEFT adapter (converted with mlx_convert, so the torch registry
serves `...:ckpt-step-N` and the worker's final evaluation runs unchanged), with mlx-lm's own files beside it in
mlx/; a full fine-tune is a Hugging Face model directory.

QLoRA: the base is quantised to 4 bits (mlx-lm's affine quantisation, group size 64, or 32 for a layer whose
width 64 does not divide; layers neither divides stay in full precision) and LoRA trains on top. The adapter it
writes is for the full-precision base, like any QLoRA adapter: served on the unquantised model its outputs differ
slightly from those seen in training. mlx/adapter_config.json records the quantisation as `base_quantization`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from honed.data.tokenize import IGNORE, TokenizedExample
from honed.engines.base import TrainCallbacks, TrainConfig, TrainResult
from honed.engines.mlx_convert import MLX_WEIGHTS, mlx_to_peft, write_mlx_config
from honed.engines.schedule import (PAD_MULTIPLE, StepReport, at_step_end, checkpoint_directory, early_stopper,
                                    finish_run, labelled_count, lr_factor, micro_batches, out_of_time,
                                    step_stream)
from honed.errors import HonedError
from honed.observability.memory import peak_bytes, resident_bytes

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
MLX_DIR = "mlx"
QUANT_BITS = 4
QUANT_GROUP_SIZES = (64, 32)  # the first that divides a layer's input width
PACKING_UNSUPPORTED = "packing is not supported by the MLX engine yet; set honed.packing to false"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json")
MODEL_FILES = ("config.json", "generation_config.json")
DTYPES = {"fp32": mx.float32, "bf16": mx.bfloat16, "fp16": mx.float16}


def device_name() -> str:
    return "mlx-gpu" if mx.default_device().type == mx.DeviceType.gpu else "mlx-cpu"


def memory_usage() -> dict[str, int]:
    usage = {"memory_rss": resident_bytes(), "memory_peak": peak_bytes()}
    if mx.default_device().type == mx.DeviceType.gpu:  # Metal's own allocations are not in the RSS
        usage["device_memory"] = mx.get_active_memory()
        usage["device_memory_peak"] = mx.get_peak_memory()
    return usage


# -------------------------------------------------------------------------------------------- model


def quantize_base(model: nn.Module, model_config: dict[str, Any]) -> tuple[int, int]:
    """Quantise the base to 4 bits in place with mlx-lm; (quantised layers, layers left in full precision)."""
    from mlx_lm.utils import quantize_model

    def group_size(path: str, module: nn.Module) -> dict[str, Any] | bool:
        width = module.weight.shape[-1]
        size = next((g for g in QUANT_GROUP_SIZES if width % g == 0), None)
        return {"group_size": size, "bits": QUANT_BITS, "mode": "affine"} if size else False

    before = [p for p, m in model.named_modules() if hasattr(m, "to_quantized")]
    # the smallest group size as mlx-lm's default: its own divisibility check must not skip a 32-wide layer
    quantize_model(model, model_config, group_size=min(QUANT_GROUP_SIZES), bits=QUANT_BITS,
                   quant_predicate=group_size)
    done = sum(1 for _, m in model.named_modules() if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)))
    return done, len(before) - done


def lora_keys(model: nn.Module, target_modules: list[str] | None) -> list[str]:
    """Paths, relative to a transformer block, of the linear layers that get LoRA (mlx-lm's `keys`): all of
    them, or those whose last name is in target_modules. Raises HonedError when none matches."""
    found, names = set(), set()
    for layer in model.layers:
        for path, module in layer.named_modules():
            if isinstance(module, (nn.Linear, nn.QuantizedLinear)):
                name = path.rsplit(".", 1)[-1]
                names.add(name)
                if target_modules is None or name in target_modules:
                    found.add(path)
    if not found:
        raise HonedError(f"target_modules {target_modules} names no linear layer of the model's blocks; "
                         f"they are: {', '.join(sorted(names))}", param="honed.target_modules")
    return sorted(found)


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute each transformer block's activations in the backward pass instead of keeping them.

    mlx-lm's grad_checkpoint patches the block class for the whole process, once per call; this patches it
    once and checkpoints only the blocks of models that asked, so later jobs in the same worker are unaffected."""
    block_type = type(model.layers[0])
    if not getattr(block_type, "_honed_checkpointable", False):
        plain = block_type.__call__

        def call(block: nn.Module, *args: Any, **kwargs: Any) -> Any:
            if not getattr(block, "honed_checkpoint", False):
                return plain(block, *args, **kwargs)

            def inner(params: Any, *args: Any, **kwargs: Any) -> Any:
                block.update(params)
                return plain(block, *args, **kwargs)

            return mx.checkpoint(inner)(block.trainable_parameters(), *args, **kwargs)

        block_type.__call__ = call
        block_type._honed_checkpointable = True
    for block in model.layers:
        block.honed_checkpoint = True


def load_for_training(config: TrainConfig) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(model ready to train, mlx-lm tokenizer, what was done to it: LoRA parameters, quantisation)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    model, tokenizer, model_config = load(str(config.model_dir), return_config=True)
    model.set_dtype(DTYPES[config.precision])  # the weights' dtype is the compute dtype in MLX
    setup: dict[str, Any] = {}
    if config.adapter == "full":
        model.unfreeze()
    else:
        if config.adapter == "qlora":
            quantised, kept = quantize_base(model, model_config)
            setup["base_quantization"] = {"bits": QUANT_BITS, "group_sizes": list(QUANT_GROUP_SIZES),
                                          "mode": "affine", "quantised_layers": quantised, "full_precision": kept}
        model.freeze()
        keys = lora_keys(model, config.target_modules)
        setup["lora"] = {"rank": config.lora_rank, "scale": config.lora_alpha / config.lora_rank,
                         "dropout": config.lora_dropout, "keys": keys}
        linear_to_lora_layers(model, len(model.layers), setup["lora"])
    if config.gradient_checkpointing:
        checkpoint_blocks(model)
    model.train()
    return model, tokenizer, setup


def parameter_counts(model: nn.Module, adapter: str) -> tuple[int, int]:
    """(trainable, total) parameters, a 4-bit weight counted as the weight it stands for."""
    from mlx_lm.utils import get_total_parameters

    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    # mlx-lm counts leaf modules only: a LoRA layer's own matrices are not in its total
    return trainable, get_total_parameters(model) + (trainable if adapter != "full" else 0)


# --------------------------------------------------------------------------------------------- loss


def batch_arrays(examples: list[TokenizedExample], pad_id: int) -> tuple[mx.array, mx.array, mx.array, mx.array,
                                                                        int]:
    """(ids, rows, cols, targets, real tokens): the padded ids (torch_train.collate's width) and where the
    labelled next-token targets are. The model is causal, so right padding changes nothing before it."""
    width = int(math.ceil(max(len(e.input_ids) for e in examples) / PAD_MULTIPLE) * PAD_MULTIPLE)
    ids = np.full((len(examples), width), pad_id, dtype=np.int32)
    labels = np.full((len(examples), width), IGNORE, dtype=np.int32)
    for row, example in enumerate(examples):
        ids[row, :len(example.input_ids)] = example.input_ids
        labels[row, :len(example.labels)] = example.labels
    targets = labels[:, 1:]
    rows, cols = np.nonzero(targets != IGNORE)
    return (mx.array(ids), mx.array(rows.astype(np.int32)), mx.array(cols.astype(np.int32)),
            mx.array(targets[rows, cols]), sum(len(e.input_ids) for e in examples))


def masked_loss(model: nn.Module, ids: mx.array, rows: mx.array, cols: mx.array,
                targets: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over labelled (assistant) positions, and how many of them the argmax gets right.
    The full logits are computed (mlx-lm's models have no common body/head split to call apart), then only
    labelled positions are gathered before the softmax."""
    logits = model(ids)[rows, cols].astype(mx.float32)
    loss = nn.losses.cross_entropy(logits, targets, reduction="mean")
    return loss, (mx.argmax(logits, axis=-1) == targets).sum()


def accumulated_gradients(model: nn.Module, examples: list[TokenizedExample], parts: list[list[int]],
                          pad_id: int) -> tuple[Any, float, int, int, int]:
    """(gradients, loss, correct, labelled, tokens) of one batch run as micro-batches, each weighted by its share
    of the labelled tokens: the same update as the whole batch at once (torch_train does the same)."""
    loss_and_grad = nn.value_and_grad(model, masked_loss)
    total_labelled = max(1, sum(labelled_count(examples[i]) for part in parts for i in part))
    summed, value, correct, labelled, tokens = None, 0.0, 0, 0, 0
    for part in parts:
        ids, rows, cols, targets, part_tokens = batch_arrays([examples[i] for i in part], pad_id)
        tokens += part_tokens
        if not targets.size:  # an empty mean is NaN
            continue
        weight = targets.size / total_labelled
        (loss, part_correct), grads = loss_and_grad(model, ids, rows, cols, targets)
        grads = grads if len(parts) == 1 else tree_map(lambda g: g * weight, grads)
        summed = grads if summed is None else tree_map(mx.add, summed, grads)
        mx.eval(summed, loss, part_correct)  # one micro-batch's activations at a time
        value += loss.item() * weight
        correct, labelled = correct + int(part_correct.item()), labelled + targets.size
    if summed is None:
        summed = tree_map(mx.zeros_like, model.trainable_parameters())
    return summed, value, correct, labelled, tokens


def evaluate(model: nn.Module, examples: list[TokenizedExample], batch_size: int, pad_id: int) -> dict[str, float]:
    """Token-weighted loss and accuracy over examples (the validation split), dropout off."""
    model.eval()
    total_loss, total_correct, total_tokens = 0.0, 0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        ids, rows, cols, targets, _ = batch_arrays([examples[i] for i in order[start:start + batch_size]], pad_id)
        if targets.size:
            loss, correct = masked_loss(model, ids, rows, cols, targets)
            total_loss += loss.item() * targets.size
            total_correct += int(correct.item())
            total_tokens += targets.size
    model.train()
    if not total_tokens:
        return {}
    return {"valid_loss": total_loss / total_tokens, "valid_mean_token_accuracy": total_correct / total_tokens}


# ------------------------------------------------------------------------------------------- saving


def _copy_files(source: Path, names: tuple[str, ...], directory: Path) -> None:
    for name in names:
        if (source / name).is_file():
            shutil.copy2(source / name, directory / name)


def save_weights(model: nn.Module, config: TrainConfig, setup: dict[str, Any], directory: Path) -> None:
    """The trained weights as the rest of honed reads them: a PEFT adapter (plus mlx-lm's files in mlx/), or
    a Hugging Face model directory for a full fine-tune; the base's tokenizer files with either."""
    directory.mkdir(parents=True, exist_ok=True)
    if config.adapter == "full":
        from mlx_lm.utils import save_model

        save_model(directory, model)
        _copy_files(config.model_dir, MODEL_FILES, directory)
    else:
        mlx_dir = directory / MLX_DIR
        mlx_dir.mkdir()
        mx.save_safetensors(str(mlx_dir / MLX_WEIGHTS), dict(tree_flatten(model.trainable_parameters())),
                            metadata={"format": "mlx"})
        extra = {k: v for k, v in setup.items() if k != "lora"}
        write_mlx_config(mlx_dir, **setup["lora"], base_model=str(config.model_dir), **extra)
        mlx_to_peft(mlx_dir, directory, config.model_dir)
    _copy_files(config.model_dir, TOKENIZER_FILES, directory)


def restore_weights(model: nn.Module, directory: Path, adapter: str) -> None:
    if adapter == "full":
        weights: dict[str, mx.array] = {}
        for shard in sorted(directory.glob("model*.safetensors")):
            weights.update(mx.load(str(shard)))
        model.load_weights(list(weights.items()))
    else:
        model.load_weights(str(directory / MLX_DIR / MLX_WEIGHTS), strict=False)


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    found = [p for p in checkpoints_dir.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


# --------------------------------------------------------------------------------------------- train


def train(config: TrainConfig, train_set: list[TokenizedExample], valid_set: list[TokenizedExample],
          callbacks: TrainCallbacks) -> TrainResult:
    """Run (or resume) one fine-tuning run with MLX; returns when done or stopped, raises on failure
    (HonedError for what the user can change: packing, target_modules that match nothing)."""
    if config.packing:
        raise HonedError(PACKING_UNSUPPORTED, param="honed.packing")
    if config.device == "cpu":
        mx.set_default_device(mx.cpu)
    mx.random.seed(config.seed)  # LoRA's A matrices start random
    model, tokenizer, setup = load_for_training(config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if "base_quantization" in setup:
        quantised = setup["base_quantization"]
        callbacks.event("log", f"Quantised the base to {QUANT_BITS} bits for QLoRA ({quantised['quantised_layers']} "
                        f"layers; {quantised['full_precision']} kept in full precision)", quantised)

    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.n_epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup_steps = max(1, int(total_steps * config.warmup_ratio))
    schedule = lr_factor(total_steps, warmup_steps)
    optimizer = optim.AdamW(learning_rate=config.learning_rate * schedule(0), weight_decay=config.weight_decay,
                            bias_correction=True)  # torch's AdamW corrects the moments' bias; mlx's default does not

    checkpoints_dir = config.output_dir / "checkpoints"
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    start_step, trained_tokens = 0, 0
    resume_from = latest_checkpoint(checkpoints_dir)
    if resume_from is not None:
        state = json.loads((resume_from / STATE_FILE).read_text())
        restore_weights(model, resume_from, config.adapter)
        optimizer.state = tree_unflatten(list(mx.load(str(resume_from / OPTIMIZER_FILE)).items()))
        start_step, trained_tokens = int(state["step"]), int(state["trained_tokens"])
        callbacks.event("log", f"Resumed from checkpoint at step {start_step}", {"step": start_step})

    trainable, total = parameter_counts(model, config.adapter)
    device = device_name()
    callbacks.event("log", f"Training {trainable:,} of {total:,} parameters on {device} for {total_steps} steps",
                    {"trainable_parameters": trainable, "total_parameters": total, "device": device,
                     "total_steps": total_steps, "examples": len(train_set), "engine": "mlx"})

    lengths = [len(e.input_ids) for e in train_set]
    report = StepReport(config, callbacks.event, total_steps, warmup_steps, trained_tokens)
    stopper = early_stopper(config, start_step)
    started = time.monotonic()
    step, stopped, early_stopped = start_step, None, None
    def validate(at_step: int) -> dict[str, Any]:
        """Validation loss as one eval event. No probe: it runs torch models; the worker's final evaluation
        runs on the converted adapter instead."""
        if not valid_set:
            return {}
        found = evaluate(model, valid_set, config.batch_size, pad_id)
        if found:
            callbacks.event("eval", f"Step {at_step}: validation loss {found['valid_loss']:.4f}",
                            {"phase": "validation", "step": at_step, **found, "task": {}})
        return found

    def save_checkpoint(at_step: int, metrics: dict[str, Any]) -> None:
        with checkpoint_directory(checkpoints_dir, at_step) as partial:
            save_weights(model, config, setup, partial)
            mx.save_safetensors(str(partial / OPTIMIZER_FILE), dict(tree_flatten(optimizer.state)))
            (partial / STATE_FILE).write_text(json.dumps({"step": at_step, "trained_tokens": report.trained_tokens}))
        callbacks.checkpoint(at_step, checkpoints_dir / f"step-{at_step}", metrics)

    for step_index, epoch, indices in step_stream(lengths, config, start_step, total_steps):
        reason = callbacks.should_stop()
        if reason:
            stopped = reason
            break
        # dropout's randomness is a function of (seed, step): a resumed run draws what the first would have
        mx.random.seed(config.seed * 1_000_003 + step_index)
        grads, value, correct, labelled, tokens = accumulated_gradients(
            model, train_set, micro_batches(indices, config.gradient_accumulation), pad_id)
        grads, grad_norm = optim.clip_grad_norm(grads, config.max_grad_norm)
        optimizer.learning_rate = config.learning_rate * schedule(step_index)
        optimizer.update(model, grads)
        mx.eval(grad_norm, model.trainable_parameters(), optimizer.state)

        step = step_index + 1
        # what torch reports: the rate the schedule has moved on to, after this step
        report.step(step, epoch, value, correct, labelled, tokens, lambda: {
            "learning_rate": config.learning_rate * schedule(step), "grad_norm": grad_norm.item(), **memory_usage()})
        early_stopped = at_step_end(step, total_steps, value, config, validate, save_checkpoint, stopper)
        if early_stopped is not None or out_of_time(config, started, step, total_steps, report):
            break

    return finish_run(config, step, start_step, total_steps, stopped, report, validate, save_checkpoint,
                      (STATE_FILE, OPTIMIZER_FILE), stopper, early_stopped)
