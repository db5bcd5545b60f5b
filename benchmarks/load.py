"""Load benchmark: one daemon training a job while it serves many chat clients and SSE followers at once.

Starts a real daemon on loopback, starts a long fine-tuning job, measures the job's training throughput alone,
then for `--seconds` (60) runs `--chats` (200) clients that each send short chat requests back to back and
`--followers` (50) clients following the job's events over SSE, and measures the throughput again. Prints the
error rate (goal 0), chat latency percentiles, what the followers received, and the training tokens/s under load
as a ratio of the tokens/s alone (goal: at most a 30 % drop). Writes benchmarks/results/load-<model>.json.

    .venv/bin/python benchmarks/load.py [--model tiny|smollm2|PATH] [--seconds 60] [--chats 200] [--followers 50]

Training throughput comes from the job's own metrics events: trained tokens between the first and the last event
inside a window, over the time between them (the worker stamps each event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from hone import Client
from hone.local_daemon import LocalDaemon, free_port

from stats import percentile  # benchmarks/stats.py: scripts run from this folder

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_DROP = 0.30
PROMPTS = ["What is the capital of France?", "Say hello.", "Name a colour.", "What is 2 + 2?", "Give me a word."]



def throughput(metrics: list[dict], start: float, end: float) -> float | None:
    """Training tokens/s between the first and last metrics event stamped inside [start, end]."""
    inside = [m for m in metrics if start <= m["timestamp"] <= end]
    if len(inside) < 2 or inside[-1]["timestamp"] <= inside[0]["timestamp"]:
        return None
    tokens = inside[-1]["data"]["trained_tokens"] - inside[0]["data"]["trained_tokens"]
    return tokens / (inside[-1]["timestamp"] - inside[0]["timestamp"])


def record_metrics(base_url: str, job_id: str, found: list[dict]) -> None:
    """Every metrics event of the job as it arrives, with the worker's own timestamp (the list API's are whole
    seconds)."""
    with httpx.stream("GET", f"{base_url}/v1/fine_tuning/jobs/{job_id}/events",
                      headers={"Accept": "text/event-stream"}, timeout=None) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("kind") == "metrics" and "trained_tokens" in (event.get("data") or {}):
                    found.append(event)


async def chat_client(http: httpx.AsyncClient, model: str, index: int, until: float, latencies: list[float],
                      errors: list[str]) -> None:
    turn = 0
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            response = await http.post("/v1/chat/completions", json={
                "model": model, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[(index + turn) % len(PROMPTS)]}]})
            if response.status_code != 200 or not response.json()["choices"]:
                errors.append(f"{response.status_code}: {response.text[:200]}")
            else:
                latencies.append(time.monotonic() - started)
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        turn += 1


async def follower(base_url: str, job_id: str, until: float, received: list[int], errors: list[str]) -> None:
    """Follows the job's events until `until`; counts what arrived. A dropped stream is an error."""
    count = 0
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30.0, read=None)) as http:
            async with http.stream("GET", f"/v1/fine_tuning/jobs/{job_id}/events",
                                   headers={"Accept": "text/event-stream"}) as response:
                if response.status_code != 200:
                    errors.append(f"SSE {response.status_code}")
                    return
                lines = response.aiter_lines()
                while True:
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        line = await asyncio.wait_for(lines.__anext__(), timeout=remaining)
                    except (asyncio.TimeoutError, StopAsyncIteration):
                        break
                    if line.startswith("data: "):
                        count += 1
    except httpx.HTTPError as exc:
        errors.append(f"SSE {type(exc).__name__}: {exc}")
    received.append(count)


async def load(base_url: str, model: str, job_id: str, seconds: float, chats: int, followers: int) -> dict:
    until = time.monotonic() + seconds
    latencies: list[float] = []
    chat_errors: list[str] = []
    sse_errors: list[str] = []
    received: list[int] = []
    limits = httpx.Limits(max_connections=chats + 10, max_keepalive_connections=chats + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(seconds + 120), limits=limits) as http:
        await asyncio.gather(
            *(follower(base_url, job_id, until, received, sse_errors) for _ in range(followers)),
            *(chat_client(http, model, i, until, latencies, chat_errors) for i in range(chats)))
    requests = len(latencies) + len(chat_errors)
    return {
        "chat_requests": requests, "chat_errors": len(chat_errors), "error_rate": len(chat_errors) / max(requests, 1),
        "chat_per_second": len(latencies) / seconds,
        "latency_p50_s": percentile(latencies, 0.5), "latency_p95_s": percentile(latencies, 0.95),
        "latency_max_s": max(latencies, default=float("nan")),
        "followers": followers, "sse_errors": len(sse_errors), "followers_completed": len(received),
        "events_received_min": min(received, default=0), "events_received_median": statistics.median(received or [0]),
        "first_errors": (chat_errors + sse_errors)[:5],
    }


def model_reference(name: str, scratch: Path) -> tuple[str, str]:
    """(reference for the job and the chats, label for the results file)."""
    if name == "tiny":
        from honed.models.tiny import build_tiny_model

        return str(build_tiny_model(scratch / "tiny")), "tiny"
    if name == "smollm2":
        return "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2"
    return name, Path(name).name.lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--alone", type=float, default=30.0, help="seconds of training measured without load")
    args = parser.parse_args()

    rows = [{"messages": [{"role": "user", "content": f"Question number {i}: what is {i} + {i}?"},
                          {"role": "assistant", "content": f"The answer to question {i} is {2 * i}."}]}
            for i in range(256)]
    with tempfile.TemporaryDirectory(prefix="honed-load-") as scratch:
        model, label = model_reference(args.model, Path(scratch))
        daemon = LocalDaemon(Path(scratch) / "home", free_port()).start()
        try:
            with Client(daemon.base_url, timeout=300) as client:
                uploaded = client.files.create(("".join(json.dumps(r) + "\n" for r in rows)).encode())
                job = client.fine_tuning.jobs.create(
                    model=model, training_file=uploaded.id, hyperparameters={"n_epochs": 100, "batch_size": 4},
                    honed={"estimate": False, "eval_live_cases": 0, "checkpoint_interval": 1_000_000})
                found: list[dict] = []
                threading.Thread(target=record_metrics, args=(daemon.base_url, job.id, found), daemon=True).start()
                # the model answers once before timing: its first load is not what this measures
                client.chat.completions.create(model=model, max_tokens=2,
                                               messages=[{"role": "user", "content": "hi"}])
                while len(found) < 3:  # training has started (its model is loaded, steps are coming)
                    time.sleep(1.0)
                alone_start = time.time()
                time.sleep(args.alone)
                alone_end = time.time()
                loaded = asyncio.run(load(daemon.base_url, model, job.id, args.seconds, args.chats, args.followers))
                load_end = time.time()
                time.sleep(2.0)  # the last window's event
                client.fine_tuning.jobs.cancel(job.id)
        finally:
            daemon.stop()

    alone = throughput(found, alone_start, alone_end)
    under_load = throughput(found, alone_end, load_end)
    result = {
        "model": model if args.model != "tiny" else "tiny (tests' random-weight Llama)",
        "seconds": args.seconds, "chats": args.chats, **loaded,
        "train_tokens_per_s_alone": alone, "train_tokens_per_s_under_load": under_load,
        "train_ratio": (under_load / alone) if alone and under_load else None, "goal_max_drop": GOAL_DROP,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }
    for key, value in result.items():
        if key != "machine":
            print(f"{key:<30} {value:.3f}" if isinstance(value, float) else f"{key:<30} {value}")
    ratio = result["train_ratio"]
    if ratio is not None:
        print(f"training under load runs at {ratio:.2f}x its speed alone "
              f"({'met' if ratio >= 1 - GOAL_DROP else 'missed'}: the goal is at least {1 - GOAL_DROP:.2f}x)")
    print(f"errors: {loaded['chat_errors']} of {loaded['chat_requests']} chat requests, {loaded['sse_errors']} SSE "
          f"({'met' if loaded['chat_errors'] + loaded['sse_errors'] == 0 else 'missed'}: the goal is 0)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"load-{label}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
