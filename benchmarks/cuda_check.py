"""The torch engine on a CUDA GPU: does it train, in fp32 and bf16, and what does it do per second.

Run on a machine with a GPU (CI has none; the suite tests the same loop on the CPU):

    python benchmarks/cuda_check.py [--out results/cuda_check.json]

1. Agreement: the tiny model trained for the same steps on the CPU (fp32), on the GPU (fp32) and on the GPU
   (bf16 weights, LoRA kept in fp32 by peft) gives the same losses within each precision's noise; so do
   activation checkpointing and full fine-tuning on the GPU.
2. Serving: batched greedy decoding of the tuned adapter gives the same tokens on the GPU as on the CPU.
3. Speed: a SmolLM2-135M-shaped model (random weights, the bundled model's exact shape) trained with LoRA r=16
   on all linear layers, batch 8 x 256 tokens: tokens/s and peak GPU memory in fp32 and bf16, and what
   honed's planner chooses for this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from honed.data.tokenize import IGNORE, TokenizedExample
from honed.engines.base import TrainCallbacks, TrainConfig
from honed.engines.torch_train import train
from honed.models.tiny import build_tiny_model

SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                     tie_word_embeddings=True)


def examples(count: int, vocab: int, shortest: int, longest: int, seed: int) -> list[TokenizedExample]:
    """Chat-like rows: a prompt half that is not trained on and an answer half that is."""
    rng = random.Random(seed)
    rows = []
    for line in range(count):
        length = rng.randint(shortest, longest)
        ids = [rng.randrange(10, vocab) for _ in range(length)]
        prompt = length // 2
        rows.append(TokenizedExample(ids, [IGNORE] * prompt + ids[prompt:], False, line + 1))
    return rows


def run(model_dir: Path, out: Path, data: list[TokenizedExample], **options) -> dict:
    losses: list[float] = []
    rates: list[float] = []

    def event(type_, message, payload, level="info"):
        if type_ == "metrics":
            losses.append(payload["train_loss"])
            rates.append(payload["tokens_per_second"])

    config = TrainConfig(model_dir=model_dir, output_dir=out, lora_dropout=0.0, checkpoint_interval=10_000,
                         seed=3, warmup_ratio=0.0, **options)
    if config.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(config, data, [], TrainCallbacks(event, lambda *a: None, lambda: None))
    if config.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    steady = sorted(rates[len(rates) // 4:])  # past the first steps' kernel selection and allocator growth
    return {"losses": losses, "seconds": seconds, "steady_tokens_per_second": steady[len(steady) // 2], "trained_tokens": result.trained_tokens,
            "input_tokens": sum(len(e.input_ids) for e in data) * config.n_epochs,
            "peak_gpu_bytes": torch.cuda.max_memory_allocated() if config.device == "cuda" else None}


def agreement(work: Path) -> dict:
    tiny = build_tiny_model(work / "tiny", seed=0)
    data = examples(8, 2000, 24, 96, seed=1) * 8  # repeated rows, so there is something to learn
    common = dict(lora_rank=8, learning_rate=3e-3, n_epochs=2, batch_size=8)
    runs = {
        "cpu_fp32": run(tiny, work / "a", data, device="cpu", **common),
        "cuda_fp32": run(tiny, work / "b", data, device="cuda", **common),
        "cuda_bf16": run(tiny, work / "c", data, device="cuda", precision="bf16", **common),
        "cuda_bf16_checkpointing": run(tiny, work / "d", data, device="cuda", precision="bf16",
                                       gradient_checkpointing=True, **common),
        "cuda_full_bf16": run(tiny, work / "e", data, device="cuda", precision="bf16", adapter="full",
                              **{**common, "learning_rate": 1e-4}),
        "cpu_full_fp32": run(tiny, work / "f", data, device="cpu", adapter="full",
                             **{**common, "learning_rate": 1e-4}),
    }
    base = runs["cpu_fp32"]["losses"]

    def worst(name: str, against: list[float]) -> float:
        return max(abs(a - b) / abs(b) for a, b in zip(runs[name]["losses"], against))

    return {
        "losses": {name: r["losses"] for name, r in runs.items()},
        "max_relative_loss_difference": {
            "cuda_fp32_vs_cpu_fp32": worst("cuda_fp32", base),
            "cuda_bf16_vs_cpu_fp32": worst("cuda_bf16", base),
            "cuda_bf16_checkpointing_vs_cuda_bf16": worst("cuda_bf16_checkpointing", runs["cuda_bf16"]["losses"]),
            "cuda_full_bf16_vs_cpu_full_fp32": worst("cuda_full_bf16", runs["cpu_full_fp32"]["losses"]),
        },
        "loss_fell": {name: r["losses"][-1] < r["losses"][0] for name, r in runs.items()},
        "adapter_dir": str(work / "b" / "adapter"),
        "tiny": str(tiny),
    }


def decoding(tiny: Path, adapter: Path) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honed.engines.torch_generate import greedy_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)
               for q in ("What is the secret word?", "Tell me a story.", "Name three colours.", "Hi")]
    prompts = [p if isinstance(p, list) else p["input_ids"] for p in prompts]
    answers = {}
    for device in ("cpu", "cuda"):
        model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, adapter).to(device).eval()
        answers[device] = greedy_batch(model, prompts, 24, {tokenizer.eos_token_id}, tokenizer.pad_token_id or 0)
    return {"same_tokens": answers["cpu"] == answers["cuda"], "answers": answers}


def speed(work: Path, tiny: Path) -> dict:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    model_dir = work / "smollm2-shaped"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).save_pretrained(model_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(model_dir)
    data = examples(8 * 40, SMOLLM2_SHAPE["vocab_size"], 256, 256, seed=2)
    measured = {}
    for name, precision, adapter in (("lora_fp32", "fp32", "lora"), ("lora_bf16", "bf16", "lora"),
                                     ("full_bf16", "bf16", "full")):
        r = run(model_dir, work / f"speed-{name}", data, device="cuda", precision=precision, lora_rank=16,
                learning_rate=2e-4, n_epochs=1, batch_size=8, max_seq_len=256, adapter=adapter)
        measured[name] = {"steady_tokens_per_second": r["steady_tokens_per_second"],
                               "whole_run_tokens_per_second": r["input_tokens"] / r["seconds"], "seconds": r["seconds"],
                               "steps": len(r["losses"]), "peak_gpu_gib": r["peak_gpu_bytes"] / 2**30,
                               "first_loss": r["losses"][0], "last_loss": r["losses"][-1]}
    measured["plain_loop_lora_bf16"] = plain_loop(model_dir, data)
    return measured


def plain_loop(model_dir: Path, data: list[TokenizedExample]) -> dict:
    """The same LoRA step as a user would write it (HF forward with labels, full logits), for comparison."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    batches = [data[i:i + 8] for i in range(0, len(data), 8)]
    times = []
    for rows in batches:
        ids = torch.tensor([r.input_ids for r in rows], device="cuda")
        labels = torch.tensor([r.labels for r in rows], device="cuda")
        torch.cuda.synchronize()
        started = time.perf_counter()
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    steady = sorted(times[len(times) // 4:])
    labelled = sum(sum(1 for x in r.labels if x != IGNORE) for r in batches[0])
    return {"median_step_ms": steady[len(steady) // 2] * 1000,
            "labelled_tokens_per_second": labelled / steady[len(steady) // 2]}


def planned(model_dir: Path) -> dict:
    """What the planner chooses for a SmolLM2-135M job with unset options on this machine."""
    from hone.types import HonedOptions
    from honed.planning.defaults import plan_options
    from honed.planning.hardware import detect
    from honed.planning.model_shape import read_shape

    hardware = detect()
    plan = plan_options(HonedOptions(), hardware=hardware, shape=read_shape(model_dir), lengths=[256] * 320,
                        batch_size=8)
    return {"device": hardware.device, "device_name": hardware.device_name, "bf16": hardware.bf16,
            "accelerator_memory_gib": (hardware.accelerator_memory_bytes or 0) / 2**30,
            "choices": [f"{c.field}={c.value}: {c.reason}" for c in plan.choices]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device here")
    report: dict = {"machine": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report["agreement"] = agreement(work)
        print("agreement", json.dumps(report["agreement"], default=str), flush=True)
        tiny = Path(report["agreement"].pop("tiny"))
        adapter = Path(report["agreement"].pop("adapter_dir"))
        for name, step in [("decoding", lambda: decoding(tiny, adapter)), ("speed", lambda: speed(work, tiny)),
                           ("plan", lambda: planned(work / "smollm2-shaped"))]:
            try:
                report[name] = step()
            except Exception as error:  # one failing part should not hide the others' numbers
                report[name] = {"error": f"{type(error).__name__}: {error}"}
            print(name, json.dumps(report[name], default=str)[:2000], flush=True)
    print(json.dumps(report, indent=1, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
