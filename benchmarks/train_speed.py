"""Training speed: honed's torch engine against the HF Trainer + peft, and mlx-lm's LoRA trainer, on one run.

Every arm trains the same LoRA (rank 16, alpha 32, no dropout, all linear layers) for the same steps of the same
chats (the three recipes' training sets, shuffled from one seed, cut to --max-len tokens, loss on assistant
tokens only), batch 8, the same learning rate, warm-up and cosine decay:

  honed     a real fine-tuning job through a real daemon and its worker, exactly as a user's job runs
  hf        transformers' Trainer with peft's LoRA, written the way its documentation shows (DataCollatorForSeq2Seq,
            random batches padded to their longest row)
  mlx-lm    mlx_lm.tuner.trainer.train (mlx[cpu] here; Metal on a Mac), where mlx-lm is installed

Each arm runs in its own process, so each one's peak RSS is its own. Throughput is real (non-padding) tokens per
second of wall time over the steps after the first two (warm-up: allocator, caches). Equal work is checked on a
held-out set of validation chats: every arm's adapter is scored by the same masked loss, and the paired bootstrap
CI of the per-example difference says whether honed's model is as good as the baseline's.

MFU is the model FLOPs a token needs (forward, plus the backward pass for activations: a frozen base has no
weight gradients; LoRA's own products are under 1% and left out; attention's scores at the batch's mean length)
times tokens/s, over the machine's measured fp32 matmul peak (torch, all cores, measured in this run).

    .venv/bin/python benchmarks/train_speed.py [--steps 24] [--only smollm2] [--arms honed,hf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RECIPES = ("customer-support", "code-generation", "creative-writing")
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
SEED, BATCH, RANK, ALPHA, LR, WARMUP = 42, 8, 16, 32.0, 2e-4, 0.1
SKIPPED_STEPS = 2
HELD_OUT = 48
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ---- the machine -------------------------------------------------------------------------------------------

def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["simd"] = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def matmul_peak(dtype_name: str, size: int = 2048, seconds: float = 3.0) -> float:
    """The best FLOP/s of a square torch matmul over short windows (the machine's practical peak)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started, runs = time.perf_counter(), 0
        while time.perf_counter() - started < 0.3:
            a @ b
            runs += 1
        best = max(best, 2 * size ** 3 * runs / (time.perf_counter() - started))
    return best


def flops_per_token(model_dir: Path, mean_length: float) -> float:
    """LoRA training FLOPs per token: 2 x (forward + activation-gradient) x the weights' multiply-adds, plus
    attention's score and value products (QK^T and AV: 2 x 2 x d x context, forward and backward)."""
    config = json.loads((model_dir / "config.json").read_text())
    d, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads", heads) * (d // heads)
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * ffn
    weights = layers * per_layer + d * config["vocab_size"]
    attention = layers * 4 * d * mean_length / 2  # causal: a token sees half the row on average
    return 2 * 2 * (weights + attention)


# ---- the data ----------------------------------------------------------------------------------------------

def chats(split: str) -> list[dict]:
    records = []
    for recipe in RECIPES:
        lines = (ROOT / "recipes" / recipe / "data" / f"{split}.jsonl").read_text().splitlines()
        records += [json.loads(line) for line in lines if line.strip()]
    random.Random(SEED).shuffle(records)
    return records


def tokenized(tokenizer, records: list[dict], max_len: int) -> list:
    from honed.data.example import Example, Message
    from honed.data.tokenize import tokenize_example

    return [tokenize_example(tokenizer, Example(tuple(Message(m["role"], m["content"]) for m in r["messages"]), i + 1),
                             max_len) for i, r in enumerate(records)]


def held_out_losses(model, tokenizer, records: list[dict], max_len: int) -> list[float]:
    """Each held-out chat's mean loss on its assistant tokens (honed's masked loss, one chat at a time)."""
    import torch

    from honed.engines.torch_train import collate, masked_loss

    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses = []
    with torch.no_grad():
        for example in tokenized(tokenizer, records, max_len):
            loss, _, labelled = masked_loss(model, collate([example], pad))
            if labelled:
                losses.append(float(loss))
    return losses


def steady_rate(ends: list[float], tokens: list[int]) -> float:
    """Tokens per second over the steps after the first SKIPPED_STEPS; `ends[i]` is when step i+1 ended."""
    return sum(tokens[SKIPPED_STEPS:]) / (ends[-1] - ends[SKIPPED_STEPS - 1])


def warmup_steps(steps: int) -> int:
    """honed's warm-up for WARMUP of `steps` (torch_train: at least one step)."""
    return max(1, int(steps * WARMUP))


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- the arms (each runs in its own process: --arm NAME) ----------------------------------------------------

def arm_honed(model_dir: Path, steps: int, max_len: int, score_held_out: bool = True) -> dict:
    from hone import Client
    from hone.local_daemon import LocalDaemon, free_port

    train = "".join(json.dumps(r) + "\n" for r in chats("train")[:steps * BATCH])
    with tempfile.TemporaryDirectory(prefix="honed-speed-") as scratch:
        home = Path(scratch) / "home"
        daemon = LocalDaemon(home, free_port()).start()
        try:
            with Client(daemon.base_url, timeout=600) as client:
                training = client.files.create(train.encode(), filename="speed.jsonl")
                job = client.fine_tuning.jobs.create(
                    model=str(model_dir), training_file=training.id, seed=SEED,
                    hyperparameters={"n_epochs": 1, "batch_size": BATCH},
                    honed={"adapter": "lora", "lora_rank": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0,
                           "learning_rate": LR, "warmup_ratio": WARMUP, "max_steps": steps, "max_seq_len": max_len,
                           "checkpoint_interval": steps, "estimate": False, "engine": "torch"})
                job = client.fine_tuning.jobs.wait(job.id, poll=1.0, timeout=3600)
                if job.status != "succeeded":
                    raise SystemExit(f"honed job {job.id} {job.status}: {job.error}")
                listed = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
                events = [e for e in listed if e.kind == "metrics" and "train_loss" in (e.data or {})]
                threads = [e.data for e in listed if (e.data or {}).get("kind") == "threads"]  # torch_threads.py
                output = home / job.honed["result"]["output_path"]
        finally:
            daemon.stop()
        events.sort(key=lambda e: e.data["step"])
        ends = [e.data["elapsed_s"] for e in events]
        trained = [e.data["trained_tokens"] for e in events]
        tokens = [trained[0]] + [b - a for a, b in zip(trained, trained[1:])]
        held_out = None
        if score_held_out:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), output)
            held_out = held_out_losses(model, tokenizer, chats("validation")[:HELD_OUT], max_len)
    return {"tokens_per_second": steady_rate(ends, tokens), "losses": [e.data["train_loss"] for e in events],
            "held_out": held_out, "peak_rss": max(e.data["memory_peak"] for e in events),
            "steps": len(events), "tokens": sum(tokens), "thread_changes": threads}


def arm_hf(model_dir: Path, steps: int, max_len: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    rows = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
            for e in tokenized(tokenizer, chats("train")[:steps * BATCH], max_len)]
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    tokens: list[int] = []

    def collator(features):
        batch = pad(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    ends: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory(prefix="hf-speed-") as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_train_batch_size=BATCH, max_steps=steps,
                                 learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=warmup_steps(steps),
                                 weight_decay=0.0,
                                 max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], seed=SEED,
                                 use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Clock()]).train()
    held_out = held_out_losses(model, tokenizer, chats("validation")[:HELD_OUT], max_len)
    return {"tokens_per_second": steady_rate(ends, tokens[:len(ends)]), "losses": losses, "held_out": held_out,
            "peak_rss": peak_rss(), "steps": len(ends), "tokens": sum(tokens[:len(ends)])}


def arm_mlx(model_dir: Path, steps: int, max_len: int) -> dict:
    import mlx.core as mx
    import mlx.optimizers as optim
    import numpy as np
    from mlx_lm import load
    from mlx_lm.tuner.datasets import CacheDataset, ChatDataset
    from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, iterate_batches, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    mx.random.seed(SEED)
    model, tokenizer = load(str(model_dir))
    model.freeze()
    keys = [f"{'mlp' if name in ('gate_proj', 'up_proj', 'down_proj') else 'self_attn'}.{name}" for name in LORA_TARGETS]
    linear_to_lora_layers(model, len(model.layers), {"rank": RANK, "scale": ALPHA / RANK, "dropout": 0.0,
                                                     "keys": keys})
    data = CacheDataset(ChatDataset(chats("train")[:steps * BATCH], tokenizer, mask_prompt=True))
    tokens: list[int] = []

    def counted_batches(*args, **kwargs):
        for batch, lengths in iterate_batches(*args, **kwargs):
            tokens.append(int(np.array(lengths)[:, 1].sum()))
            yield batch, lengths

    ends: list[float] = []
    losses: list[float] = []

    class Clock(TrainingCallback):
        def on_train_loss_report(self, info):
            ends.append(time.perf_counter())
            losses.append(float(info["train_loss"]))

    warmup = warmup_steps(steps)
    schedule = optim.join_schedules([optim.linear_schedule(0.0, LR, warmup),
                                     optim.cosine_decay(LR, steps - warmup)], [warmup])
    train(model, optim.AdamW(learning_rate=schedule, weight_decay=0.0), data,
          args=TrainingArgs(batch_size=BATCH, iters=steps, steps_per_report=1, steps_per_eval=10 ** 9,
                            steps_per_save=10 ** 9, max_seq_length=max_len,
                            adapter_file=str(Path(tempfile.mkdtemp()) / "adapters.safetensors")),
          iterate_batches=counted_batches, training_callback=Clock())
    return {"tokens_per_second": steady_rate(ends, tokens[:len(ends)]), "losses": losses, "held_out": None,
            "peak_rss": peak_rss(), "steps": len(ends), "tokens": sum(tokens[:len(ends)])}


ARMS = {"honed": arm_honed, "hf": arm_hf, "mlx-lm": arm_mlx}


# ---- the driver ----------------------------------------------------------------------------------------------

def model_dirs(only: list[str] | None) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    cache = Path(os.environ.get("HONED_BENCH_MODELS", Path.home() / ".cache" / "honed" / "bench-models"))
    if not only or "tiny" in only:
        from honed.models.tiny import build_tiny_model

        dirs["tiny"] = build_tiny_model(cache / "tiny", seed=0)
    if not only or "smollm2" in only:
        from honed.models.catalog import ModelCatalog

        dirs["smollm2"] = ModelCatalog(cache).local_dir(SMOLLM2)
    return dirs


def run_arm(arm: str, model_dir: Path, steps: int, max_len: int, timeout: float) -> dict | None:
    try:
        done = subprocess.run([sys.executable, __file__, "--arm", arm, "--model-dir", str(model_dir),
                               "--steps", str(steps), "--max-len", str(max_len)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {arm} did not finish {steps} steps in {timeout:.0f} s", flush=True)
        return None
    if done.returncode != 0:
        print(f"  {arm} failed:\n{done.stderr[-2000:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_held_out(honed: list[float], baseline: list[float]) -> dict:
    from honed.evaluation.stats import bootstrap_ci

    interval = bootstrap_ci([a - b for a, b in zip(honed, baseline)])
    mean = sum(baseline) / len(baseline)
    return {"honed": sum(honed) / len(honed), "baseline": mean, "difference": interval.estimate,
            "low": interval.low, "high": interval.high, "relative": interval.estimate / mean,
            "equal": interval.low <= 0 <= interval.high or abs(interval.estimate / mean) < 0.02}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--only", action="append", choices=["tiny", "smollm2"])
    parser.add_argument("--arms", default="honed,hf,mlx-lm")
    parser.add_argument("--mlx-steps", type=int, default=None, help="fewer steps for mlx-lm (slow on a CPU)")
    parser.add_argument("--arm-timeout", type=float, default=900, help="seconds an arm may take (mlx-lm compiles "
                        "its kernels with the C++ compiler on a CPU: minutes per new shape)")
    parser.add_argument("--out", default=str(RESULTS / "train_speed.json"))
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:  # one arm, in its own process
        print(json.dumps(ARMS[args.arm](Path(args.model_dir), args.steps, args.max_len)))
        return

    arms = [a for a in args.arms.split(",") if a != "mlx-lm" or _has_mlx_lm()]
    peak = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16", size=1024, seconds=1.5)}
    print(f"matmul peak: fp32 {peak['float32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bfloat16'] / 1e9:.1f} GFLOP/s",
          flush=True)
    rows: list[dict] = []
    unfinished: list[dict] = []
    for name, model_dir in model_dirs(args.only).items():
        results = {}
        for arm in arms:
            steps = args.mlx_steps if arm == "mlx-lm" and args.mlx_steps else args.steps
            print(f"{name}: {arm}, {steps} steps ...", flush=True)
            results[arm] = run_arm(arm, model_dir, steps, args.max_len, args.arm_timeout)
            if results[arm] is None:
                unfinished.append({"model": name, "arm": arm, "steps": steps, "timeout_s": args.arm_timeout})
        mean_length = _mean_length(model_dir, args.steps, args.max_len)
        per_token = flops_per_token(model_dir, mean_length)
        for arm, found in results.items():
            if found is None:
                continue
            tail = found["losses"][-max(1, len(found["losses"]) // 4):]
            rows.append({"model": name, "arm": arm, "steps": found["steps"],
                         "tokens_per_second": found["tokens_per_second"],
                         "mfu": found["tokens_per_second"] * per_token / peak["float32"],
                         "final_train_loss": sum(tail) / len(tail), "peak_rss_bytes": found["peak_rss"],
                         "held_out_loss": (sum(found["held_out"]) / len(found["held_out"])
                                           if found["held_out"] else None)})
        if results.get("honed") and results.get("hf"):
            rows.append({"model": name, "arm": "honed/hf",
                         "speedup": results["honed"]["tokens_per_second"] / results["hf"]["tokens_per_second"],
                         "rss_ratio": results["honed"]["peak_rss"] / results["hf"]["peak_rss"],
                         "held_out": compare_held_out(results["honed"]["held_out"], results["hf"]["held_out"])})
        show([r for r in rows if r["model"] == name])
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "matmul_peak_flops": peak, "steps": args.steps,
                               "max_len": args.max_len, "batch": BATCH, "lora_rank": RANK, "rows": rows,
                               "unfinished": unfinished},
                              indent=2) + "\n")
    print(f"wrote {out}")


def _has_mlx_lm() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlx_lm") is not None


def _mean_length(model_dir: Path, steps: int, max_len: int) -> float:
    from transformers import AutoTokenizer

    examples = tokenized(AutoTokenizer.from_pretrained(model_dir), chats("train")[:steps * BATCH], max_len)
    return sum(len(e.input_ids) for e in examples) / len(examples)


def show(rows: list[dict]) -> None:
    print(f"{'model':8s} {'arm':7s} {'tokens/s':>9s} {'MFU':>6s} {'train loss':>10s} {'held-out':>9s} "
          f"{'peak RSS':>9s}")
    for r in rows:
        if r["arm"] == "honed/hf":
            h = r["held_out"]
            print(f"{r['model']:8s} honed/hf: {r['speedup']:.2f}x tokens/s, {r['rss_ratio']:.2f}x peak RSS; held-out "
                  f"loss {h['honed']:.4f} vs {h['baseline']:.4f} (difference {h['difference']:+.4f}, CI "
                  f"[{h['low']:+.4f}, {h['high']:+.4f}]): {'equal' if h['equal'] else 'NOT EQUAL'}")
            continue
        held = "-" if r["held_out_loss"] is None else f"{r['held_out_loss']:.4f}"
        print(f"{r['model']:8s} {r['arm']:7s} {r['tokens_per_second']:9.1f} {r['mfu']:6.1%} "
              f"{r['final_train_loss']:10.4f} {held:>9s} {r['peak_rss_bytes'] / 2 ** 20:7.0f}MB", flush=True)


if __name__ == "__main__":
    main()
