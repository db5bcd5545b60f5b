"""Following a job live in the terminal: a rich progress bar fed by the job's event stream."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hone.client import Client
from hone.types import FineTuningJob, JobEvent

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """A loss curve in one line of block characters (the most recent `width` values)."""
    recent = values[-width:]
    if not recent:
        return ""
    low, high = min(recent), max(recent)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * (len(SPARK) - 1)))] for v in recent)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def follow_job(client: Client, job_id: str, console: Console) -> FineTuningJob:
    """Draw the job's progress until it ends; returns the finished job."""
    losses: list[float] = []
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("loss [cyan]{task.fields[loss]}[/] {task.fields[spark]}"),
        TextColumn("[green]{task.fields[rate]}[/] tok/s"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("queued", total=None, loss="-", spark="", rate="-", eta="--:--")
        event: JobEvent
        for event in client.fine_tuning.jobs.stream(job_id):
            data = event.data or {}
            if event.kind == "metrics":
                losses.append(float(data["train_loss"]))
                progress.update(task, description="training", total=data["total_steps"], completed=data["step"],
                                loss=f"{data['train_loss']:.3f}", spark=sparkline(losses),
                                rate=f"{data['tokens_per_second']:.0f}", eta=_eta(data.get("eta_s")))
            elif event.kind == "status":
                progress.update(task, description=data.get("status", event.type))
            elif event.kind in ("log", "warning", "eval", "sample") or event.level != "info":
                style = "yellow" if event.level == "warn" else "red" if event.level == "error" else "dim"
                progress.console.print(f"[{style}]{escape(event.message)}[/]")  # model text may hold [brackets]
    return client.fine_tuning.jobs.retrieve(job_id)
