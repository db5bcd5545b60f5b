"""`hone search`: run a hyperparameter search (each trial a fine-tuning job), watch it, read its result."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hone.client import Client, HoneError
from hone.job_options import job_options, job_request
from hone.types import TERMINAL_STATUSES

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
ENDED = {"complete", "pruned", "failed"}


def parse_range(text: str) -> tuple[str, dict[str, Any]]:
    """`name=low..high` (`:log` for a log scale) or `name=a,b,c` as a space entry."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise HoneError(0, f"--space '{text}': write name=low..high[:log] or name=a,b,c")
    log = spec.endswith(":log")
    spec = spec.removesuffix(":log")

    def number(part: str) -> float | int:
        try:
            return int(part) if part.strip().lstrip("-").isdigit() else float(part)
        except ValueError:
            raise HoneError(0, f"--space: '{part}' in '{text}' is not a number") from None

    if ".." in spec:
        low, _, high = spec.partition("..")
        return name, {"low": number(low), "high": number(high), "log": log}
    return name, {"choices": [number(p) for p in spec.split(",")]}


def _client(ctx: click.Context) -> Client:
    return Client(ctx.obj["url"], ctx.obj["api_key"])


@click.group()
def search() -> None:
    """Search hyperparameters: each trial is a fine-tuning job; poor trials are pruned early."""


@search.command("run")
@click.option("--space", "spaces", multiple=True, required=True,
              help="A searched hyperparameter: name=low..high[:log] or name=a,b,c (repeatable). Names: "
                   "learning_rate_multiplier, n_epochs, batch_size, lora_rank, lora_alpha, lora_dropout, "
                   "warmup_ratio, weight_decay.")
@click.option("--trials", type=int, default=8, show_default=True)
@click.option("--trial-steps", type=int, default=None, help="Each trial's budget in optimizer steps.")
@click.option("--trial-minutes", type=float, default=None, help="Each trial's budget in minutes of training.")
@click.option("--metric", default="valid_loss", show_default=True,
              help="What trials are compared on: valid_loss, or a metric of --eval measured while training.")
@click.option("--pruner", type=click.Choice(["median", "hyperband", "none"]), default="median", show_default=True)
@click.option("--search-seed", type=int, default=0, show_default=True)
@click.option("--wait/--no-wait", default=True, help="Draw the trials' progress until the search ends.")
@job_options
@click.pass_context
def search_run(ctx: click.Context, spaces: tuple[str, ...], trials: int, trial_steps: int | None,
               trial_minutes: float | None, metric: str, pruner: str, search_seed: int, wait: bool,
               **job_args: Any) -> None:
    """Start a search over the job described by the job options."""
    client = _client(ctx)
    space = dict(parse_range(text) for text in spaces)
    job = job_request(client, job_args)
    found = client.fine_tuning.searches.create(
        job=job, space=space, n_trials=trials, trial_max_steps=trial_steps, trial_max_minutes=trial_minutes,
        metric=metric, pruner=pruner, seed=search_seed)
    console.print(f"{found.id}  {found.status}")
    if wait:
        found = follow_search(client, found.id)
        show(found)
        if found.status != "succeeded":
            err_console.print(f"[red]{found.status}[/]: {found.error.message if found.error else ''}",
                              highlight=False)
            sys.exit(1)


def follow_search(client: Client, search_id: str, poll: float = 1.0) -> Any:
    """A bar of trials ended out of trials planned, with the best value so far, until the search ends."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
               TextColumn("{task.fields[best]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        found = client.fine_tuning.searches.retrieve(search_id)
        task = progress.add_task(f"search {search_id}", total=found.n_trials, best="")
        while True:
            ended = sum(1 for t in found.trials if t.state in ENDED)
            best = found.best_trial
            progress.update(task, completed=ended,
                            best=f"best {found.metric} {best.value:.4g} (trial {best.number})" if best else "")
            if found.status in TERMINAL_STATUSES:
                return found
            time.sleep(poll)
            found = client.fine_tuning.searches.retrieve(search_id)


def show(found: Any) -> None:
    params = list(found.space)
    table = Table(title=f"{found.id}: {found.direction} {found.metric} ({found.status})")
    for column in ("#", "state", *params, found.metric, "step", "job"):
        table.add_column(column, justify="right" if column not in ("state", "job") else "left")
    for t in found.trials:
        value = "-" if t.value is None else f"{t.value:.4g}"
        cells = [f"{t.params.get(p):.3g}" if isinstance(t.params.get(p), float) else str(t.params.get(p, "-"))
                 for p in params]
        star = " *" if found.best_trial and t.number == found.best_trial.number else ""
        table.add_row(f"{t.number}{star}", t.state, *cells, value, str(t.step or "-"), t.job_id or "-")
    console.print(table)
    if found.best_trial and found.best_trial.fine_tuned_model:
        console.print(f"best: trial {found.best_trial.number} -> {found.best_trial.fine_tuned_model}")
    if found.importance:
        console.print("importance: " + ", ".join(f"{k} {v:.0%}" for k, v in found.importance.items()))


@search.command("show")
@click.argument("search_id")
@click.pass_context
def search_show(ctx: click.Context, search_id: str) -> None:
    """A search's trials, best trial and parameter importances."""
    show(_client(ctx).fine_tuning.searches.retrieve(search_id))


@search.command("list")
@click.pass_context
def search_list(ctx: click.Context) -> None:
    """Searches, newest first."""
    table = Table("id", "status", "model", "metric", "trials", "best")
    for found in _client(ctx).fine_tuning.searches.list().data:
        best = f"{found.best_trial.value:.4g}" if found.best_trial else "-"
        table.add_row(found.id, found.status, found.model, found.metric, f"{len(found.trials)}/{found.n_trials}",
                      best)
    console.print(table)


@search.command("cancel")
@click.argument("search_id")
@click.pass_context
def search_cancel(ctx: click.Context, search_id: str) -> None:
    """Cancel a search and its unfinished trials."""
    found = _client(ctx).fine_tuning.searches.cancel(search_id)
    console.print(f"{found.id}  {found.status}")

