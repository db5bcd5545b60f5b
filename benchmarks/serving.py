"""Serving benchmark: honed's /v1/chat/completions against transformers' generate() in this same process.

Prints time to first token (p50/p95), generated tokens/s for 1 and 8 concurrent streams, the hot-load time of
a freshly trained adapter, the time from "job succeeded" to the first answer on an alias deployed to it, and
honed's overhead as a ratio over the in-process baseline. Then the fine-tuned model is exported merged and as
GGUF (F16 and Q8_0): llama.cpp's tokens/s serving each GGUF against torch's generate() on the same merged
model. Writes the table to benchmarks/results/serving-<model>.json with a description of the machine.

    .venv/bin/python benchmarks/serving.py                 # SmolLM2-135M-Instruct (prepared on first use)
    .venv/bin/python benchmarks/serving.py --model tiny    # the tiny test model: seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hone import Client
from hone.local_daemon import LocalDaemon, free_port

from stats import percentile  # benchmarks/stats.py: scripts run from this folder

PROMPT = [{"role": "user", "content": "Write a short paragraph about the sea."}]
RESULTS = Path(__file__).resolve().parent / "results"



def baseline(model_dir: Path, tokens: int, runs: int) -> dict[str, float]:
    """transformers generate(), greedy, with the model and tokenizer already in memory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    model.generate(**inputs, max_new_tokens=4, do_sample=False)  # warm-up
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        rates.append((out.shape[1] - inputs["input_ids"].shape[1]) / (time.perf_counter() - started))
    return {"tokens_per_s": statistics.median(rates)}


def stream_once(client: Client, model: str, tokens: int) -> tuple[float, int, float]:
    """(time to first token, tokens generated, total seconds) for one streamed request."""
    started = time.perf_counter()
    first, count = None, 0
    for chunk in client.chat.completions.create(model=model, messages=PROMPT, temperature=0, max_tokens=tokens,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            count = chunk.usage.completion_tokens
    return first or 0.0, count, time.perf_counter() - started


def honed_run(client: Client, model: str, tokens: int, runs: int, concurrency: int) -> dict[str, float]:
    stream_once(client, model, 4)  # warm-up: the base model loads on its first request
    singles = [stream_once(client, model, tokens) for _ in range(runs)]
    ttfts = [s[0] for s in singles]
    single_rate = statistics.median(count / total for _, count, total in singles)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency + 1) as pool:
        streams = [pool.submit(stream_once, client, model, tokens) for _ in range(concurrency)]
        health = health_latencies(client, lambda: all(f.done() for f in streams))
        results = [f.result() for f in streams]
    aggregate = sum(count for _, count, _ in results) / (time.perf_counter() - started)
    return {"ttft_p50_s": percentile(ttfts, 0.5), "ttft_p95_s": percentile(ttfts, 0.95),
            "tokens_per_s_1_stream": single_rate, f"tokens_per_s_{concurrency}_streams": aggregate,
            "healthz_p95_ms_while_generating": percentile(health, 0.95) * 1000,
            "healthz_max_ms_while_generating": max(health) * 1000}


def health_latencies(client: Client, finished) -> list[float]:
    """/healthz round trips every 50 ms until `finished()`: generation must not block the event loop."""
    latencies = []
    while not finished():
        started = time.perf_counter()
        client.health()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    return latencies or [0.0]


def hot_load(client: Client, model_ref: str, training_rows: list[dict]) -> dict[str, float]:
    """Train a 1-step adapter, then time its first answer (cold: loads the adapter) and a second (warm)."""
    uploaded = client.files.create(("".join(json.dumps(r) + "\n" for r in training_rows)).encode(),
                                   filename="bench.jsonl")
    job = client.fine_tuning.jobs.create(model=model_ref, training_file=uploaded.id, suffix="bench",
                                         honed={"max_steps": 1})
    job = client.fine_tuning.jobs.wait(job.id, poll=0.2, timeout=600)
    succeeded_at = time.perf_counter()
    assert job.status == "succeeded", job.error
    client.aliases.point("bench-bot", job.fine_tuned_model)  # deploy: what a person does on success
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        client.chat.completions.create(model="bench-bot", messages=PROMPT, temperature=0, max_tokens=1)
        timings.append(time.perf_counter() - started)
    return {"adapter_cold_first_answer_s": timings[0], "adapter_warm_first_answer_s": timings[1],
            "adapter_hot_load_s": timings[0] - timings[1],
            "job_succeeded_to_first_alias_answer_s": time.perf_counter() - succeeded_at - timings[1],
            "fine_tuned_model": job.fine_tuned_model}


def export(client: Client, model: str, **request) -> Path:
    job = client.exports.create(model=model, **request)
    while job.status not in ("succeeded", "failed"):
        time.sleep(0.3)
        job = client.exports.retrieve(job.id)
    assert job.status == "succeeded", job.error
    return job


AGREEMENT_PROMPTS = ["Write a short paragraph about the sea.", "What is the capital of France?",
                     "Give me three tips for sleeping well.", "Explain what a kettle does.",
                     "Say hello in French and in German.", "What is 12 times 7?"]


def greedy_answers(client: Client, model: str, tokens: int) -> list[str]:
    return [client.chat.completions.create(model=model, messages=[{"role": "user", "content": p}], temperature=0,
                                           max_tokens=tokens).choices[0].message.content for p in AGREEMENT_PROMPTS]


def gguf_speed(client: Client, tuned: str, tokens: int, runs: int) -> dict[str, float]:
    """llama.cpp serving GGUF exports vs torch's generate() on the merged model, one stream each; and how often
    each GGUF's greedy answer is exactly torch's (served fine-tuned model) on a few prompts."""
    merged = Path(export(client, tuned, format="merged").output_dir)
    found = {"torch_generate_merged_tokens_per_s": baseline(merged, tokens, runs)["tokens_per_s"]}
    reference = greedy_answers(client, tuned, 32)
    for quantization in ("f16", "q8_0", "q4_k_m"):
        exported = export(client, tuned, format="gguf", quantization=quantization)
        stream_once(client, exported.id, 4)  # loads it
        rates = [count / total for _, count, total in (stream_once(client, exported.id, tokens) for _ in range(runs))]
        found[f"llamacpp_{quantization}_tokens_per_s"] = statistics.median(rates)
        found[f"llamacpp_{quantization}_over_torch"] = (found[f"llamacpp_{quantization}_tokens_per_s"]
                                                        / found["torch_generate_merged_tokens_per_s"])
        answers = greedy_answers(client, exported.id, 32)
        found[f"llamacpp_{quantization}_same_greedy_answer"] = (
            sum(a == b for a, b in zip(answers, reference)) / len(reference))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    with tempfile.TemporaryDirectory(prefix="honed-bench-") as scratch:
        home = Path(scratch) / "home"
        if args.model == "tiny":
            from honed.models.tiny import build_tiny_model

            model_dir = build_tiny_model(Path(scratch) / "tiny")
            model_ref = str(model_dir)
        else:
            from honed.models.catalog import SMOLLM2_ID, ModelCatalog

            model_dir = ModelCatalog(home / "models").local_dir(SMOLLM2_ID)
            model_ref = SMOLLM2_ID
        base = baseline(model_dir, args.tokens, args.runs)
        daemon = LocalDaemon(home, free_port()).start()
        try:
            with Client(daemon.base_url) as client:
                served = honed_run(client, model_ref, args.tokens, args.runs, args.concurrency)
                rows = [{"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]}]
                loading = hot_load(client, model_ref, rows * 8)
                gguf = gguf_speed(client, loading.pop("fine_tuned_model"), args.tokens, args.runs)
        finally:
            daemon.stop()

    result = {
        "model": args.model, "max_tokens": args.tokens, "machine": {
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "baseline_generate_tokens_per_s": base["tokens_per_s"], **served, **loading, **gguf,
        "honed_over_baseline_1_stream": served["tokens_per_s_1_stream"] / base["tokens_per_s"],
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key != "machine":
            print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    overhead = 1 - result["honed_over_baseline_1_stream"]
    print(f"honed overhead vs in-process generate(): {overhead:+.1%} (goal < 10%)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"serving-{args.model}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
