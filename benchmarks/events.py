"""Event latency benchmark: from the worker writing an event to an SSE client receiving it.

Runs a real training job on the tiny test model (an event every step) behind a real daemon, follows it over
SSE, and compares each event's write time (its `timestamp`, set by the worker) with its arrival. Prints
p50/p95/max against the goal (p95 < 100 ms) and writes benchmarks/results/events.json with the machine.

    .venv/bin/python benchmarks/events.py [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from hone import Client
from hone.local_daemon import LocalDaemon, free_port

from stats import percentile  # benchmarks/stats.py: scripts run from this folder

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_P95_S = 0.100



def follow(base_url: str, job_id: str) -> list[tuple[str, float]]:
    """(event kind, seconds from written to received) for every event of the job."""
    latencies = []
    with httpx.stream("GET", f"{base_url}/v1/fine_tuning/jobs/{job_id}/events",
                      headers={"Accept": "text/event-stream"}, timeout=None) as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            arrived = time.time()
            event = json.loads(line[6:])
            if event.get("done"):
                break
            latencies.append((event["kind"], arrived - event["timestamp"]))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    from honed.models.tiny import build_tiny_model

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
            for i in range(16)]
    with tempfile.TemporaryDirectory(prefix="honed-bench-") as scratch:
        model_dir = build_tiny_model(Path(scratch) / "tiny")
        daemon = LocalDaemon(Path(scratch) / "home", free_port()).start()
        try:
            with Client(daemon.base_url) as client:
                uploaded = client.files.create(("".join(json.dumps(r) + "\n" for r in rows)).encode())
                job = client.fine_tuning.jobs.create(
                    model=str(model_dir), training_file=uploaded.id, hyperparameters={"n_epochs": 100, "batch_size": 4},
                    honed={"max_steps": args.steps, "checkpoint_interval": 50})
                latencies = follow(daemon.base_url, job.id)
        finally:
            daemon.stop()

    values = [seconds for _, seconds in latencies]
    result = {
        "events": len(values), "steps": args.steps,
        "p50_ms": percentile(values, 0.5) * 1000, "p95_ms": percentile(values, 0.95) * 1000,
        "max_ms": max(values) * 1000, "mean_ms": statistics.mean(values) * 1000,
        "metrics_events_p95_ms": percentile([s for k, s in latencies if k == "metrics"], 0.95) * 1000,
        "goal_p95_ms": GOAL_P95_S * 1000,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    }
    for key, value in result.items():
        if key != "machine":
            print(f"{key:<22} {value:.1f}" if isinstance(value, float) else f"{key:<22} {value}")
    print(f"p95 is {result['p95_ms'] / result['goal_p95_ms']:.2f}x the goal ({'met' if result['p95_ms'] <= result['goal_p95_ms'] else 'missed'})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "events.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
