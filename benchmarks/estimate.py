"""Estimate accuracy: what POST /v1/estimate says a job will take, against what the job then takes.

Runs each job below through a real daemon (the worker at nice 10, as always): asks for the estimate first
(which measures or reuses a probe), runs the job, and reads the estimate-vs-actual the worker records. Prints
the error on total time and peak memory against the goals (time within +-25 %, memory within +-20 %) and
writes benchmarks/results/estimate.json with the machine.

    .venv/bin/python benchmarks/estimate.py [--only demo]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from hone import Client
from hone.local_daemon import LocalDaemon, free_port

RESULTS = Path(__file__).resolve().parent / "results"
DEMO = Path(__file__).resolve().parent.parent / "client" / "hone" / "demo"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def jobs(tiny: Path) -> dict[str, dict]:
    heldout = json.loads((DEMO / "aurora-heldout.json").read_text())
    return {
        # the demo's job: LoRA r=16, batch 8, the held-out suite before and after
        "demo": dict(model=SMOLLM2, data=DEMO / "aurora-train.jsonl", hyperparameters={"n_epochs": 3, "batch_size": 8},
                     honed={"lora_rank": 16, "checkpoint_interval": 16, "eval": heldout, "eval_live_cases": 2}),
        # training only, smaller batches and accumulation chosen by hand
        "smollm2-accumulate": dict(model=SMOLLM2, data=DEMO / "aurora-train.jsonl",
                                   hyperparameters={"n_epochs": 1, "batch_size": 8},
                                   honed={"lora_rank": 8, "gradient_accumulation": 2, "checkpoint_interval": 100}),
        "tiny": dict(model=str(tiny), data=DEMO / "aurora-train.jsonl", hyperparameters={"n_epochs": 4, "batch_size": 4},
                     honed={"lora_rank": 16, "checkpoint_interval": 20}),
    }


def run(client: Client, name: str, spec: dict) -> dict:
    training = client.files.create(spec["data"])
    request = dict(model=spec["model"], training_file=training.id, hyperparameters=spec["hyperparameters"],
                   honed=spec["honed"], seed=42)
    asked = time.monotonic()
    estimate = client.fine_tuning.jobs.estimate(**request)
    estimate_s = time.monotonic() - asked
    job = client.fine_tuning.jobs.create(**request)
    job = client.fine_tuning.jobs.wait(job.id, poll=1.0, timeout=3600)
    if job.status != "succeeded":
        raise SystemExit(f"{name}: job {job.status}: {job.error}")
    found = job.honed["result"]["estimate"]
    row = {"job": name, "steps": estimate.steps, "estimate_request_s": round(estimate_s, 1),
           "probe_cached": estimate.probe.cached, **{f"{k}_{w}": v for w in ("estimated", "actual")
                                                     for k, v in found[w].items()},
           **{f"error_{k}": v for k, v in found["error"].items()}}
    print(f"{name:20s} {estimate.steps:4d} steps  time {found['estimated']['total_seconds']:7.1f} s est vs "
          f"{found['actual']['total_seconds']:7.1f} s ({found['error']['total_seconds']:+.0%})  "
          f"peak {found['estimated']['peak_memory_bytes'] / 2**20:6.0f} MB est vs "
          f"{found['actual']['peak_memory_bytes'] / 2**20:6.0f} MB ({found['error']['peak_memory_bytes']:+.0%})")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="run only these jobs (repeatable)")
    args = parser.parse_args()
    from honed.models.tiny import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="honed-bench-") as scratch:
        tiny = build_tiny_model(Path(scratch) / "tiny")
        daemon = LocalDaemon(Path(scratch) / "home", free_port()).start()
        try:
            with Client(daemon.base_url, timeout=3600) as client:
                for name, spec in jobs(tiny).items():
                    if not args.only or name in args.only:
                        rows.append(run(client, name, spec))
        finally:
            daemon.stop()
    worst_time = max(abs(r["error_total_seconds"]) for r in rows)
    worst_memory = max(abs(r["error_peak_memory_bytes"]) for r in rows)
    print(f"worst error: time {worst_time:.0%} (goal 25%), memory {worst_memory:.0%} (goal 20%)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "estimate.json").write_text(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": platform.python_version()},
        "jobs": rows, "worst_time_error": worst_time, "worst_memory_error": worst_memory}, indent=2) + "\n")


if __name__ == "__main__":
    main()
