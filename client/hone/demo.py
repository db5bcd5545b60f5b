"""`hone demo`: the whole honed cycle offline, on the bundled SmolLM2-135M-Instruct.

Prepare the base model, start the daemon, upload a small support dataset for a fictional kettle and create a
LoRA job with an eval suite of held-out questions: the job measures the base model on them, fine-tunes while
the CLI draws its progress, measures the tuned model, and the demo shows both answers side by side with the
score (an answer counts when it states the fact the question is about) and its confidence interval.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hone.client import Client
from hone.follow import follow_job
from hone.local_daemon import LocalDaemon, free_port, is_up

DEMO_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _demo_file(name: str) -> Path:
    return Path(str(resources.files("hone") / "demo" / name))


def _prepare_base_model(home: Path, console: Console) -> None:
    from honed.models.catalog import ModelCatalog

    catalog = ModelCatalog(home / "models")
    if catalog.resolve(DEMO_MODEL).kind == "prepared":
        return
    with console.status("Preparing SmolLM2-135M-Instruct (dequantising the bundled GGUF once, ~30 s)"):
        started = time.monotonic()
        catalog.local_dir(DEMO_MODEL)
    console.print(f"[green]✓[/] base model ready in {time.monotonic() - started:.0f} s")


def run_demo(home: Path, port: int | None, keep_running: bool, epochs: int, console: Console) -> int:
    started = time.monotonic()
    console.rule("[bold]honed demo[/]: fine-tune SmolLM2-135M-Instruct on a support dataset, offline")
    home.mkdir(parents=True, exist_ok=True)
    _prepare_base_model(home, console)

    port = port or free_port()
    daemon = LocalDaemon(home, port)
    if is_up(daemon.base_url):
        console.print(f"using the daemon already running at {daemon.base_url}")
        daemon = None
    else:
        with console.status(f"Starting honed on 127.0.0.1:{port} (HONED_HOME={home})"):
            daemon.start()
        console.print(f"[green]✓[/] daemon up at http://127.0.0.1:{port}")
    base_url = f"http://127.0.0.1:{port}"
    try:
        with Client(base_url) as client:
            training = client.files.create(_demo_file("aurora-train.jsonl"))
            heldout = json.loads(_demo_file("aurora-heldout.json").read_text())
            console.print(f"[green]✓[/] uploaded {training.filename} ({training.bytes:,} bytes) as {training.id}")
            job = client.fine_tuning.jobs.create(
                model=DEMO_MODEL, training_file=training.id, suffix="aurora", seed=42,
                hyperparameters={"n_epochs": epochs, "batch_size": 8, "learning_rate_multiplier": 5},
                honed={"lora_rank": 16, "checkpoint_interval": 16, "eval": heldout, "eval_live_cases": 2})
            console.print(f"[green]✓[/] created {job.id} (LoRA r=16, {epochs} epochs, lr {job.honed['learning_rate']:g})")
            job = follow_job(client, job.id, console)
            if job.status != "succeeded":
                reason = job.error.message if job.error else job.status
                console.print(f"[red]✗ the job ended {job.status}: {reason}[/]")
                return 1
            console.print(f"[green]✓[/] fine-tuned model: [bold]{job.fine_tuned_model}[/]")
            runs = _eval_events(client, job.id)
        _print_comparison(heldout, runs, console)
    finally:
        if daemon is not None and not keep_running:
            daemon.stop()
    elapsed = time.monotonic() - started
    console.print(f"[bold]Total time: {elapsed // 60:.0f} min {elapsed % 60:.0f} s[/]")
    if keep_running and daemon is not None:
        console.print(f"The daemon keeps running at {base_url}. Try:  hone chat {job.fine_tuned_model} "
                      f"--url {base_url}")
    return 0


def _eval_events(client: Client, job_id: str) -> dict[str, dict[str, Any]]:
    """The job's eval events by phase (baseline, final, comparison)."""
    found: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        page = client.fine_tuning.jobs.list_events(job_id, after=after, limit=100)
        for event in page.data:
            if event.kind == "eval" and event.data:
                found.setdefault(event.data["phase"], event.data)
        if not page.has_more:
            return found
        after = page.data[-1].id


def _print_comparison(heldout: dict[str, Any], runs: dict[str, dict[str, Any]], console: Console) -> None:
    base, tuned = runs["baseline"]["run"], runs["final"]["run"]
    base_hits = base["metrics"]["contains_all"]["per_example"]
    tuned_hits = tuned["metrics"]["contains_all"]["per_example"]
    table = Table(title="Held-out questions (never seen in training)", show_lines=True, expand=True)
    table.add_column("question", ratio=2)
    table.add_column("base SmolLM2-135M-Instruct", ratio=3)
    table.add_column("fine-tuned", ratio=3)
    mark = {1.0: "[green]✓[/] ", 0.0: "[red]✗[/] "}
    for case, before, after, hit_before, hit_after in zip(heldout["cases"], base["outputs"], tuned["outputs"],
                                                         base_hits, tuned_hits):
        table.add_row(case["prompt"], mark[hit_before] + before.strip(), mark[hit_after] + after.strip())
    console.print(table)
    total = len(heldout["cases"])
    comparison = runs["comparison"]["comparison"]["contains_all"]
    console.print(
        f"[bold]Score (answer states the right fact):[/] base {int(sum(base_hits))}/{total} "
        f"({sum(base_hits) / total:.0%})  →  fine-tuned {int(sum(tuned_hits))}/{total} "
        f"({sum(tuned_hits) / total:.0%})")
    console.print(f"contains_all: {comparison['summary']}", highlight=False)
