"""`hone demo`: the whole honed cycle offline, on the bundled SmolLM2-135M-Instruct.

Prepare the base model, start the daemon, upload a small support dataset for a fictional kettle, fine-tune a
LoRA adapter while drawing its progress, then ask the base and the tuned model the same held-out questions
and score both: an answer counts when it states the fact the question is about.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from hone.client import Client
from hone.follow import follow_job
from hone.local_daemon import LocalDaemon, free_port, is_up

DEMO_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ANSWER_TOKENS = 48


def _demo_file(name: str) -> Path:
    return Path(str(resources.files("hone") / "demo" / name))


def answer_hits(answer: str, keywords: list[str]) -> bool:
    """An answer scores when it contains every keyword of its question (case-insensitive)."""
    return all(keyword.lower() in answer.lower() for keyword in keywords)


def _ask_all(client: Client, model: str, heldout: dict[str, Any], label: str, console: Console) -> list[str]:
    answers = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(heldout["prompts"]))
        for index, prompt in enumerate(heldout["prompts"], 1):
            progress.update(task, description=f"{label}: question {index}/{len(heldout['prompts'])}")
            reply = client.chat.completions.create(
                model=model, temperature=0, max_tokens=ANSWER_TOKENS,
                messages=[{"role": "system", "content": heldout["system"]},
                          {"role": "user", "content": prompt["question"]}])
            answers.append(reply.choices[0].message.content or "")
    return answers


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
                honed={"lora_rank": 16, "checkpoint_interval": 16})
            console.print(f"[green]✓[/] created {job.id} (LoRA r=16, {epochs} epochs, lr {job.honed['learning_rate']:g})")
            job = follow_job(client, job.id, console)
            if job.status != "succeeded":
                reason = job.error.message if job.error else job.status
                console.print(f"[red]✗ the job ended {job.status}: {reason}[/]")
                return 1
            console.print(f"[green]✓[/] fine-tuned model: [bold]{job.fine_tuned_model}[/]")
            base_answers = _ask_all(client, DEMO_MODEL, heldout, "asking the base model", console)
            tuned_answers = _ask_all(client, job.fine_tuned_model, heldout, "asking the tuned model", console)
        _print_comparison(heldout, base_answers, tuned_answers, job.fine_tuned_model, console)
    finally:
        if daemon is not None and not keep_running:
            daemon.stop()
    elapsed = time.monotonic() - started
    console.print(f"[bold]Total time: {elapsed // 60:.0f} min {elapsed % 60:.0f} s[/]")
    if keep_running and daemon is not None:
        console.print(f"The daemon keeps running at {base_url}. Try:  hone chat {job.fine_tuned_model} "
                      f"--url {base_url}")
    return 0


def _print_comparison(heldout: dict[str, Any], base: list[str], tuned: list[str], model: str,
                      console: Console) -> None:
    table = Table(title="Held-out questions (never seen in training)", show_lines=True, expand=True)
    table.add_column("question", ratio=2)
    table.add_column("base SmolLM2-135M-Instruct", ratio=3)
    table.add_column("fine-tuned", ratio=3)
    base_score = tuned_score = 0
    for prompt, before, after in zip(heldout["prompts"], base, tuned):
        hit_before, hit_after = answer_hits(before, prompt["keywords"]), answer_hits(after, prompt["keywords"])
        base_score += hit_before
        tuned_score += hit_after
        mark = lambda hit: "[green]✓[/] " if hit else "[red]✗[/] "  # noqa: E731
        table.add_row(prompt["question"], mark(hit_before) + before.strip(), mark(hit_after) + after.strip())
    console.print(table)
    total = len(heldout["prompts"])
    console.print(
        f"[bold]Score (answer states the right fact):[/] base {base_score}/{total} ({base_score / total:.0%})"
        f"  →  fine-tuned {tuned_score}/{total} ({tuned_score / total:.0%})")
