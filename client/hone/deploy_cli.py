"""`hone export` and `hone models`: write a fine-tuned model out, and deploy it under a stable alias."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hone.client import Client

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
FINISHED = {"succeeded", "failed", "cancelled"}


def _client(ctx: click.Context) -> Client:
    return Client(ctx.obj["url"], ctx.obj["api_key"])


def follow_export(client: Client, export_id: str, poll: float = 0.5) -> Any:
    """A progress bar fed by the export's events until it ends; returns the finished export."""
    seen: set[str] = set()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("queued", total=1.0)
        while True:
            export = client.exports.retrieve(export_id)
            for event in reversed(client.exports.list_events(export_id, limit=100).data):
                if event.id in seen:
                    continue
                seen.add(event.id)
                fraction = (event.data or {}).get("progress")
                if fraction is not None:
                    progress.update(task, description=event.message, completed=fraction)
            if export.status in FINISHED:
                progress.update(task, description=export.status,
                                completed=1.0 if export.status == "succeeded" else progress.tasks[0].completed)
                return export
            time.sleep(poll)


@click.command()
@click.argument("model")
@click.option("--format", "export_format", type=click.Choice(["adapter", "merged", "onnx", "gguf"]),
              default="adapter", show_default=True,
              help="adapter: the PEFT adapter; merged: a plain transformers model; onnx: the merged model as ONNX, "
                   "checked with onnxruntime; gguf: for llama.cpp.")
@click.option("--quantization", type=click.Choice(["f16", "q8_0", "q4_k_m"]), default=None,
              help="gguf: f16 (default), q8_0 or q4_k_m.")
@click.option("--name", default=None, help="Folder name under HONED_HOME/exports (default: the export's id).")
@click.option("--to", "output_dir", default=None, help="An absolute folder to write to instead.")
@click.option("--wait/--no-wait", default=True, help="Show progress until the export is written.")
@click.pass_context
def export(ctx: click.Context, model: str, export_format: str, quantization: str | None, name: str | None,
           output_dir: str | None, wait: bool) -> None:
    """Export a fine-tuned MODEL (name, checkpoint, alias or job id) with its model card."""
    client = _client(ctx)
    job = client.exports.create(model=model, format=export_format, quantization=quantization, name=name,
                                output_dir=output_dir)
    console.print(f"{job.id}: {job.model} as {job.format} → {job.output_dir}", highlight=False)
    if not wait:
        return
    job = follow_export(client, job.id)
    if job.status != "succeeded":
        err_console.print(f"[red]{job.status}[/]: {job.error.message if job.error else ''}", highlight=False)
        sys.exit(1)
    table = Table(title=f"{job.output_dir}")
    table.add_column("file")
    table.add_column("size", justify="right")
    for file in job.files:
        table.add_row(file.name, f"{file.bytes / 2**20:,.2f} MiB")
    console.print(table)
    for check, value in job.checks.items():
        console.print(f"check {check}: {value}", highlight=False)


@click.group()
def models() -> None:
    """The models served here, and aliases that deploy them."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    client = _client(ctx)
    aliases = {a.name: a for a in client.aliases.list().data}
    table = Table()
    for column in ("model", "kind", "serves"):
        table.add_column(column)
    for model in client.models.list().data:
        kind = {"honed-alias": "alias", "honed-local": "fine-tuned"}.get(model.owned_by, "base")
        table.add_row(model.id, kind, aliases[model.id].model if model.id in aliases else "")
    console.print(table)


def _show_alias(alias: Any, verb: str) -> None:
    earlier = f" (before: {alias.history[0]})" if alias.history else ""
    console.print(f"[green]{verb}[/] {alias.name} → {alias.model}{earlier}", highlight=False)


@models.command("alias")
@click.argument("name")
@click.argument("model")
@click.pass_context
def models_alias(ctx: click.Context, name: str, model: str) -> None:
    """Serve MODEL under the stable NAME (deploy); requests for NAME switch to it at once."""
    _show_alias(_client(ctx).aliases.point(name, model), "deployed")


@models.command("rollback")
@click.argument("name")
@click.pass_context
def models_rollback(ctx: click.Context, name: str) -> None:
    """Point alias NAME back at the model it served before."""
    _show_alias(_client(ctx).aliases.rollback(name), "rolled back")


@models.command("unalias")
@click.argument("name")
@click.pass_context
def models_unalias(ctx: click.Context, name: str) -> None:
    _client(ctx).aliases.delete(name)
    console.print(f"removed alias {name}", highlight=False)
