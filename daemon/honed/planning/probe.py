"""A short measured run that calibrates estimates: a few real training steps at two sequence lengths, and a
few greedy tokens of decoding, in a child process so its memory peak is the job's and nothing else's.

The steps run through the job's own engine (`engine.train` on synthetic examples with `max_steps`), so the
timing includes exactly what a job pays per step. Results are cached per machine, model and shape: a probe
costs seconds, a second estimate of the same kind costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from hone.types import EstimateProbe
from honed.errors import HonedError
from honed.models.trust import model_load_options
from honed.native_runtime import runtime_environment, worker_allocator
from honed.observability.memory import release_freed, reset_peak

TIMED_STEPS = 2
"""Steps timed per shape, after one warm-up step (allocations, kernel selection)."""
DECODE_TOKENS = 12
PROBE_VERSION = 4  # 4: decoding priced per step and per row (evaluation batches by memory)
"""Part of the cache key: a probe that measures differently must not reuse an older one's numbers."""


class ProbeShape(msgspec.Struct, frozen=True):
    model_dir: str
    engine: str
    adapter: str
    precision: str
    lora_rank: int
    target_modules: list[str] | None
    gradient_checkpointing: bool
    micro_batch: int
    seq_len: int
    """The widest micro-batch the job will see (its memory peak)."""
    label_fraction: float
    """Share of positions with a loss (assistant tokens): the output head's cost scales with it."""

    def cache_key(self) -> str:
        import torch

        machine = [platform.node(), platform.machine(), platform.processor(), os.cpu_count(), torch.__version__,
                   torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", worker_allocator(os.environ)]
        key = [PROBE_VERSION, machine, msgspec.to_builtins(self)]
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _examples(vocab: int, rows: int, length: int, label_fraction: float, seed: int):
    import random

    from honed.data.tokenize import IGNORE, TokenizedExample

    rng = random.Random(seed)
    labelled = max(1, int(length * label_fraction))
    examples = []
    for _ in range(rows):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        labels = [IGNORE] * (length - labelled) + ids[length - labelled:]
        examples.append(TokenizedExample(input_ids=ids, labels=labels, truncated=False, line=0))
    return examples


def _step_times(shape: ProbeShape, lengths: tuple[int, int], out: Path) -> tuple[dict[int, list[float]], int, float]:
    """One short training run through the job's engine with batches of two lengths (the batcher groups rows
    by length, so each step is all one length): {tokens per step: [seconds of each step after the first]},
    the peak resident bytes, and the seconds spent before the first step (loading, preparing)."""
    from honed.engines import get_engine
    from honed.engines.base import TrainCallbacks, TrainConfig

    config = json.loads((Path(shape.model_dir) / "config.json").read_text())
    vocab = int(config.get("text_config", config)["vocab_size"])
    per_length = TIMED_STEPS + 1  # either length may draw the warm-up step
    examples = [e for i, n in enumerate(lengths)
                for e in _examples(vocab, shape.micro_batch * per_length, n, shape.label_fraction, seed=i)]
    marks: list[tuple[float, int, int]] = []
    started = time.monotonic()
    ready: list[float] = []

    def event(type_, message, data, level="info"):
        if type_ == "metrics":
            marks.append((data["elapsed_s"], data["trained_tokens"],
                          int(data.get("device_memory_peak") or data.get("memory_peak") or 0)))
        elif type_ == "log" and "total_steps" in data:
            ready.append(time.monotonic() - started)

    train_config = TrainConfig(
        model_dir=Path(shape.model_dir), output_dir=out, adapter=shape.adapter, lora_rank=shape.lora_rank,
        lora_alpha=2.0 * shape.lora_rank, target_modules=shape.target_modules, n_epochs=1,
        batch_size=shape.micro_batch, checkpoint_interval=10**9, max_seq_len=max(lengths),
        warmup_ratio=0.0, gradient_checkpointing=shape.gradient_checkpointing, precision=shape.precision)
    get_engine(shape.engine).train(train_config, examples, [], TrainCallbacks(event, lambda *a: None, lambda: None))
    times: dict[int, list[float]] = {}
    for (t0, tokens0, _), (t1, tokens1, _) in zip(marks, marks[1:]):
        times.setdefault(tokens1 - tokens0, []).append(t1 - t0)
    return times, max(m[2] for m in marks), ready[0] if ready else 0.0


DECODE_ROWS = (8, 64)
"""Batch sizes decoding is timed at, to fit seconds per step = a + b x rows."""


def _decode_costs(model_dir: str) -> tuple[float, float, int, float]:
    """Greedy decoding of evaluation answers, with torch (what evaluations use whatever engine trained):
    (seconds per step paid by any batch, seconds each row adds to a step, KV cache bytes per token, seconds to
    load the model)."""
    from transformers import AutoModelForCausalLM

    from honed.engines.torch_generate import greedy_batch, kv_bytes_per_token

    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(model_dir, **model_load_options(model_dir)).eval()
    loaded = time.monotonic() - started
    per_step = {}
    for rows in DECODE_ROWS:
        prompts = [[5 + i, 6, 7, 8, 9, 10, 11, 12] for i in range(rows)]
        greedy_batch(model, prompts, 1, set(), 0)  # warm up
        started = time.monotonic()
        greedy_batch(model, prompts, 1, set(), 0)
        prefill = time.monotonic() - started
        started = time.monotonic()
        greedy_batch(model, prompts, DECODE_TOKENS + 1, set(), 0)
        per_step[rows] = max(0.0, time.monotonic() - started - prefill) / DECODE_TOKENS
    few, many = DECODE_ROWS
    per_row = max(0.0, (per_step[many] - per_step[few]) / (many - few))
    fixed = max(0.0, per_step[many] - per_row * many)
    kv_bytes = kv_bytes_per_token(model.config, next(model.parameters()).dtype)
    del model
    release_freed()
    return fixed, per_row, kv_bytes, loaded


def measure(shape: ProbeShape) -> dict:
    """Run in the probing process (a child, or the worker itself): the measurements, as EstimateProbe fields."""
    import torch

    started = time.monotonic()
    decode, decode_per_row, kv_bytes, load_seconds = _decode_costs(shape.model_dir)
    reset_peak()  # the decode model is gone: the peak that matters is training's
    long_len = max(16, shape.seq_len)
    short_len = max(8, (long_len // 4) // 8 * 8)  # cheap steps; far enough apart to fit a + b x tokens
    with tempfile.TemporaryDirectory(prefix="honed-probe-") as scratch:
        times, peak, setup = _step_times(shape, (short_len, long_len), Path(scratch))
    tokens_short, tokens_long = shape.micro_batch * short_len, shape.micro_batch * long_len
    mean = {tokens: sum(ts) / len(ts) for tokens, ts in times.items()}
    t_long = mean.get(tokens_long) or max(mean.values())
    t_short = mean.get(tokens_short, t_long)
    per_token = max(0.0, (t_long - t_short) / max(1, tokens_long - tokens_short))
    fixed = max(0.0, t_long - per_token * tokens_long)
    # a validation forward pass costs what the forward half of a step does: LoRA's backward skips the frozen
    # weights' gradients (~1x forward), full fine-tuning's does not (~2x forward)
    forward_share = 1 / 3 if shape.adapter == "full" else 1 / 2
    return {
        "cached": False, "seconds": time.monotonic() - started,
        "step_seconds_fixed": fixed, "step_seconds_per_token": per_token,
        "forward_seconds_per_token": t_long * forward_share / tokens_long,
        "decode_seconds_per_step": decode, "decode_seconds_per_row": decode_per_row, "kv_bytes_per_token": kv_bytes,
        "load_seconds": max(load_seconds, setup),
        "peak_memory_bytes": peak,
        "device_peak_memory_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    }


def probe(shape: ProbeShape, cache_dir: Path, nice: int = 0, timeout: float = 600,
          in_process: bool = False) -> EstimateProbe:
    """The probe's measurements for this shape: from the cache, or measured now. The API measures in a child
    process, so a model never loads into the server; the worker measures in its own process (`in_process`),
    which has the libraries loaded already (a child would spend seconds importing them) and is where the job's
    memory peak will be, and it frees what the probe held before the job starts."""
    cache = cache_dir / f"probe-{shape.cache_key()}.json"
    if cache.is_file():
        return msgspec.convert({**json.loads(cache.read_text()), "cached": True, "seconds": 0.0}, EstimateProbe)
    if in_process:
        _keep(cache, measure(shape))
        return msgspec.convert(json.loads(cache.read_text()), EstimateProbe)
    # measured as the worker will run the job: its allocator and OpenMP waiting
    env = {**runtime_environment(os.environ, worker=True), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "honed.planning.probe"], input=msgspec.json.encode(shape),
                              capture_output=True, timeout=timeout, env=env,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    except subprocess.TimeoutExpired:
        raise HonedError(f"the estimate's probe run took over {timeout:.0f} s; try a smaller batch or "
                         "max_seq_len") from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise HonedError(f"the estimate's probe run failed: {last}")
    measured = json.loads(done.stdout.decode().strip().splitlines()[-1])
    _keep(cache, measured)
    return msgspec.convert(measured, EstimateProbe)


def _keep(cache: Path, measured: dict) -> None:
    """Write a probe's measurements to the cache whole (readers never see half a file)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".partial-{os.getpid()}")
    partial.write_text(json.dumps(measured))
    os.replace(partial, cache)


if __name__ == "__main__":
    print(json.dumps(measure(msgspec.json.decode(sys.stdin.buffer.read(), type=ProbeShape))))
