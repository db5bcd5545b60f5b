"""`hone`: the command line for honed (demo, files, data, jobs, evals, reports, chat)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hone.client import Client, HoneError
from hone.job_options import job_options as _job_options
from hone.job_options import job_request as _job_request
from hone.search_cli import search
from hone.suites import SuiteFileError, load_suite

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


class HoneGroup(click.Group):
    """Turns honed's errors into one readable line and exit status 1, instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HoneError as exc:
            err_console.print(f"[red]error:[/] {exc.message}", highlight=False)
            sys.exit(1)
        except SuiteFileError as exc:
            err_console.print(f"[red]error:[/] {exc}", highlight=False)
            sys.exit(1)


def _client(ctx: click.Context) -> Client:
    return Client(ctx.obj["url"], ctx.obj["api_key"])


def _when(timestamp: int | None) -> str:
    import datetime

    return "-" if not timestamp else datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


@click.group(cls=HoneGroup)
@click.option("--url", envvar="HONED_URL", default="http://127.0.0.1:8421", show_default=True,
              help="The daemon's address (HONED_URL).")
@click.option("--api-key", envvar="HONED_API_KEY", default=None, help="API key (HONED_API_KEY).")
@click.pass_context
def main(ctx: click.Context, url: str, api_key: str | None) -> None:
    """hone: fine-tune, compare and serve small language models with honed."""
    ctx.ensure_object(dict)
    ctx.obj.update(url=url, api_key=api_key)


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="HONED_HOME for the demo daemon (default: $HONED_HOME or ~/.honed).")
@click.option("--port", type=int, default=None, help="Port for the demo daemon (default: a free one).")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave the daemon running afterwards.")
def demo(home: Path | None, port: int | None, epochs: int, keep_running: bool) -> None:
    """Run the whole cycle offline: prepare, fine-tune, compare before/after."""
    from hone.demo import run_demo
    from honed.config import default_home

    sys.exit(run_demo((home or default_home()).resolve(), port, keep_running, epochs, console))


# ---------------------------------------------------------------------------------------------- files


@main.group()
def files() -> None:
    """Upload and list training files."""


FORMATS = click.Choice(["auto", "chat", "prompt_completion", "alpaca", "sharegpt", "csv", "tsv", "text", "markdown",
                        "chatml", "transcript"])


def _columns(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """--column prompt=question --column response=answer -> {"prompt": "question", ...}."""
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"'{pair}' is not ROLE=COLUMN (e.g. prompt=question)", param_hint="--column")
        mapping[key.strip()] = value.strip()
    return mapping


@files.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "data_format", type=FORMATS, default=None, help="Override the detected format.")
@click.option("--column", "columns", multiple=True, help="CSV/TSV: ROLE=COLUMN, roles prompt, response, label, system.")
@click.option("--purpose", type=click.Choice(["fine-tune", "evals"]), default="fine-tune", show_default=True)
@click.pass_context
def files_upload(ctx: click.Context, path: Path, data_format: str | None, columns: tuple[str, ...],
                 purpose: str) -> None:
    """Upload a data file: JSONL/JSON (chat, prompt/completion, alpaca, sharegpt), CSV/TSV, text, Markdown,
    ChatML or transcripts. The format is detected unless given."""
    uploaded = _client(ctx).files.create(path, purpose=purpose, format=data_format, columns=_columns(columns))
    console.print(f"{uploaded.id}  {uploaded.filename}  {uploaded.format or ''}  {uploaded.examples or 0:,} "
                  f"examples  {uploaded.bytes:,} bytes")


# ----------------------------------------------------------------------------------------------- data


@main.group()
def data() -> None:
    """Check, split and browse training data before training."""


@data.command("check")
@click.argument("file")
@click.option("--validation", "validation_file", default=None, help="A validation file (id or path) to check "
              "for leakage.")
@click.option("--model", default=None, help="Whose tokenizer measures lengths (default: SmolLM2-135M-Instruct).")
@click.option("--max-seq-len", type=int, default=512, show_default=True)
@click.option("--format", "data_format", type=FORMATS, default=None)
@click.option("--column", "columns", multiple=True, help="CSV/TSV: ROLE=COLUMN.")
@click.pass_context
def data_check(ctx: click.Context, file: str, validation_file: str | None, model: str | None, max_seq_len: int,
               data_format: str | None, columns: tuple[str, ...]) -> None:
    """Report what is wrong with FILE (a local path or a file id) before training. Exits 1 on errors."""
    from hone.datacheck import print_report

    if not file.startswith("file-") and not Path(file).is_file():
        raise HoneError(0, f"'{file}' is neither a file id (file-...) nor an existing file")
    with console.status(f"Checking {file}"):
        report = _client(ctx).datasets.analyze(file, validation_file=validation_file, model=model,
                                               max_seq_len=max_seq_len, format=data_format,
                                               columns=_columns(columns))
    print_report(report, console, file)
    if any(f.severity == "error" for f in report.findings):
        sys.exit(1)


@data.command("split")
@click.argument("file")
@click.option("--validation", type=float, default=0.1, show_default=True)
@click.option("--test", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stratify", type=click.Choice(["auto", "label", "length", "none"]), default="auto",
              show_default=True)
@click.option("--augment", type=float, default=0.0, show_default=True,
              help="Synthetic variants per training example (training split only).")
@click.pass_context
def data_split(ctx: click.Context, file: str, validation: float, test: float, seed: int, stratify: str,
               augment: float) -> None:
    """Split FILE (a file id or a local path, uploaded first) into stored train/validation/test files."""
    client = _client(ctx)
    if not file.startswith("file-"):
        if not Path(file).is_file():
            raise HoneError(0, f"'{file}' is neither a file id (file-...) nor an existing file")
        file = client.files.create(Path(file)).id
    result = client.datasets.split(file, validation=validation, test=test, seed=seed, stratify=stratify,
                                   augment=augment)
    console.print(f"stratified by {result.strata}" + (f", {result.synthetic} synthetic examples added to train"
                                                      if result.synthetic else ""))
    for name in ("train", "validation", "test"):
        part = getattr(result, name)
        if part is not None:
            console.print(f"{name:<10} {part.id}  {part.examples:,} examples")


@data.command("preview")
@click.argument("file_id")
@click.option("--offset", type=int, default=0)
@click.option("--limit", type=int, default=5)
@click.option("--search", "q", default=None, help="Only examples containing this text.")
@click.pass_context
def data_preview(ctx: click.Context, file_id: str, offset: int, limit: int, q: str | None) -> None:
    """Show examples of a stored file as honed reads them."""
    page = _client(ctx).files.preview(file_id, offset=offset, limit=limit, q=q)
    for example in page.data:
        head = f"[bold]line {example.line}[/]" + (f"  label={escape(example.label)}" if example.label else "")
        console.print(head)
        for message in example.messages or []:
            console.print(f"  [cyan]{escape(message['role'])}[/]: {escape(message['content'])}", highlight=False)
        if example.text is not None:
            console.print(f"  [dim]text[/]: {escape(example.text[:500])}", highlight=False)
        for problem in example.problems:
            console.print(f"  [red]! {escape(problem)}[/]", highlight=False)
    if page.has_more:
        console.print(f"[dim]more: --offset {offset + len(page.data)}[/]")


@files.command("list")
@click.pass_context
def files_list(ctx: click.Context) -> None:
    """List uploaded files."""
    table = Table("id", "filename", "bytes", "created")
    for item in _client(ctx).files.list().data:
        table.add_row(item.id, item.filename, f"{item.bytes:,}", _when(item.created_at))
    console.print(table)


# ----------------------------------------------------------------------------------------------- jobs


@main.group()
def jobs() -> None:
    """Create, list, follow and cancel fine-tuning jobs."""


@jobs.command("create")
@_job_options
@click.option("--estimate/--no-estimate", "show_estimate", default=False,
              help="Show the time and memory estimate (and the settings honed chose) before starting.")
@click.option("--follow/--no-follow", default=False, help="Draw live progress until the job ends.")
@click.pass_context
def jobs_create(ctx: click.Context, show_estimate: bool, follow: bool, **args: Any) -> None:
    """Start a fine-tuning job."""
    client = _client(ctx)
    request = _job_request(client, args)
    if show_estimate:
        _show_estimate(client, request)
    job = client.fine_tuning.jobs.create(**request)
    console.print(f"{job.id}  {job.status}")
    if follow:
        _follow(client, job.id)


@jobs.command("estimate")
@_job_options
@click.pass_context
def jobs_estimate(ctx: click.Context, **args: Any) -> None:
    """How long a job would take and how much memory it would need here, without starting it."""
    client = _client(ctx)
    _show_estimate(client, _job_request(client, args))


@jobs.command("suggest")
@_job_options
@click.pass_context
def jobs_suggest(ctx: click.Context, **args: Any) -> None:
    """The hyperparameters honed suggests for this model and data, each with its reason."""
    from rich.table import Table

    client = _client(ctx)
    with console.status("Reading the model and the data..."):
        found = client.fine_tuning.jobs.suggest(**_job_request(client, args))
    table = Table(title=f"Suggested for {found.model} ({found.parameters / 1e6:.0f}M parameters), "
                  f"{found.examples} examples of ~{found.mean_tokens:.0f} tokens")
    for column in ("setting", "value", "why"):
        table.add_column(column)
    for choice in found.choices:
        table.add_row(choice.field, "all linear" if choice.value is None else str(choice.value), choice.reason)
    console.print(table)


def _show_estimate(client: Client, request: dict[str, Any]) -> None:
    from hone.planview import estimate_table

    with console.status("Estimating (the first job of a kind measures a few real steps)..."):
        found = client.fine_tuning.jobs.estimate(**request)
    console.print(estimate_table(found))


@main.command()
@click.pass_context
def hardware(ctx: click.Context) -> None:
    """What the daemon's machine trains on: device, memory, cores, precisions, engines."""
    from hone.planview import hardware_table

    console.print(hardware_table(_client(ctx).hardware()))


def _follow(client: Client, job_id: str) -> None:
    from hone.follow import follow_job

    job = follow_job(client, job_id, console)
    if job.status == "succeeded":
        console.print(f"[green]succeeded[/]: {job.fine_tuned_model}")
    else:
        reason = f": {job.error.message}" if job.error else ""
        err_console.print(f"[red]{job.status}[/]{reason}", highlight=False)
        sys.exit(1)


@jobs.command("list")
@click.option("--limit", type=int, default=20)
@click.pass_context
def jobs_list(ctx: click.Context, limit: int) -> None:
    """List fine-tuning jobs, newest first."""
    table = Table("id", "status", "model", "fine-tuned model", "created")
    for job in _client(ctx).fine_tuning.jobs.list(limit=limit).data:
        table.add_row(job.id, job.status, job.model, job.fine_tuned_model or "-", _when(job.created_at))
    console.print(table)


@jobs.command("show")
@click.argument("job_id")
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str) -> None:
    """Show one job and its latest events."""
    client = _client(ctx)
    job = client.fine_tuning.jobs.retrieve(job_id)
    table = Table(show_header=False)
    for key, value in (("id", job.id), ("status", job.status), ("model", job.model),
                       ("fine-tuned model", job.fine_tuned_model or "-"), ("training file", job.training_file),
                       ("epochs", job.hyperparameters.n_epochs), ("batch size", job.hyperparameters.batch_size),
                       ("learning rate", (job.honed or {}).get("learning_rate")),
                       ("trained tokens", job.trained_tokens or "-"), ("created", _when(job.created_at)),
                       ("finished", _when(job.finished_at)),
                       ("error", job.error.message if job.error else "-")):
        table.add_row(key, str(value))
    console.print(table)
    events = client.fine_tuning.jobs.list_events(job_id, limit=5).data
    for event in reversed(events):
        console.print(f"[dim]{_when(event.created_at)}[/] {event.message}", highlight=False)


def _job_action(action: str, summary: str) -> None:
    """`hone jobs cancel|pause|resume JOB_ID`: one POST each, printing the job's new status."""

    @jobs.command(action, help=summary)
    @click.argument("job_id")
    @click.pass_context
    def command(ctx: click.Context, job_id: str) -> None:
        job = getattr(_client(ctx).fine_tuning.jobs, action)(job_id)
        console.print(f"{job.id}  {job.status}")


_job_action("cancel", "Stop a job for good (its checkpoints stay).")
_job_action("pause", "Pause a job after its current step (a checkpoint is kept).")
_job_action("resume", "Resume a paused job from its last checkpoint.")


@jobs.command("follow")
@click.argument("job_id")
@click.pass_context
def jobs_follow(ctx: click.Context, job_id: str) -> None:
    """Draw a job's live progress (loss, tokens/s, ETA) until it ends."""
    _follow(_client(ctx), job_id)


@main.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the report (default: JOB_ID.html or JOB_ID.pdf here).")
@click.option("--pdf", is_flag=True, help="Save the PDF (printed by Chromium) instead of the HTML.")
@click.option("--open", "open_it", is_flag=True, help="Open the report in a browser.")
@click.pass_context
def report(ctx: click.Context, job_id: str, output: Path | None, pdf: bool, open_it: bool) -> None:
    """Save a job's report: before/after with CIs, curves, answers side by side."""
    fmt = "pdf" if pdf else "html"
    target = output or Path(f"{job_id}.{fmt}")
    target.write_bytes(_client(ctx).fine_tuning.jobs.report(job_id, fmt))
    console.print(str(target))
    if open_it:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())


# ---------------------------------------------------------------------------------------------- evals


@main.group()
def evals() -> None:
    """Run eval suites on any model, or compare two."""


@evals.command("run")
@click.argument("suite_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "models", multiple=True, required=True,
              help="A model to measure; give two to compare them (second minus first).")
@click.option("--wait/--no-wait", default=True, help="Wait and print the results table.")
@click.pass_context
def evals_run(ctx: click.Context, suite_file: Path, models: tuple[str, ...], wait: bool) -> None:
    """Run the suite in SUITE_FILE (YAML or JSON) on one or two models."""
    import time

    client = _client(ctx)
    run = client.evals.create(suite=load_suite(suite_file), models=list(models))
    console.print(f"{run.id}  {run.status}")
    if not wait:
        return
    with console.status(f"Evaluating {', '.join(models)} on '{run.suite}'"):
        while run.status not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            run = client.evals.retrieve(run.id)
    if run.status != "succeeded":
        err_console.print(f"[red]{run.status}[/]: {run.error.message if run.error else ''}", highlight=False)
        sys.exit(1)
    _print_eval(run)


def _print_eval(run: Any) -> None:
    table = Table(title=f"{run.suite} ({run.id})")
    table.add_column("metric")
    for model in run.models:
        table.add_column(model, justify="right")
    if run.comparison:
        table.add_column("difference (95% CI)")
    names = list(run.results[run.models[0]]["metrics"])
    for name in names:
        cells = []
        for model in run.models:
            m = run.results[model]["metrics"][name]
            ci = f" [{m['low']:.2f}, {m['high']:.2f}]" if m.get("low") is not None else ""
            cells.append(f"{m['value']:.3f}{ci}")
        if run.comparison:
            cells.append(run.comparison[name]["summary"])
        table.add_row(name, *cells)
    console.print(table)
    if run.judge:
        console.print(f"LLM judge: {run.judge['summary']}", highlight=False)


# --------------------------------------------------------------------------------------------- recipes


@main.group()
def recipe() -> None:
    """Ready-made tasks (data, settings, eval suite): list them, or fine-tune and measure one end to end."""


def _load_recipe(name: str) -> Any:
    from hone.recipes import RecipeError, load_recipe

    try:
        return load_recipe(name)
    except RecipeError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)


@recipe.command("list")
def recipe_list() -> None:
    """The bundled recipes, with their base model and primary metric."""
    from hone.recipes import list_recipes

    table = Table("name", "primary metric", "base model", "what")
    for found in list_recipes():
        table.add_row(found.name, found.primary_metric, found.base_model, found.description)
    console.print(table)


@recipe.command("run")
@click.argument("name")
@click.option("--model", default=None, help="The base model to fine-tune (default: the recipe's).")
@click.option("--subset", type=int, default=None,
              help="A quick run: train on the first N examples and test on the first N // 2 cases.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the report (default: here).")
@click.pass_context
def recipe_run(ctx: click.Context, name: str, model: str | None, subset: int | None, output: Path | None) -> None:
    """Run recipe NAME (or a recipe folder): baseline eval, fine-tune, final eval, before/after table, report."""
    from hone.recipes import RecipeError, run_recipe

    found = _load_recipe(name)
    try:
        status = run_recipe(_client(ctx), found, model, subset, output or Path.cwd(), console)
    except RecipeError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    sys.exit(status)


# ----------------------------------------------------------------------------------------------- chat


@main.command()
@click.argument("model")
@click.option("-m", "--message", default=None, help="Ask one question and exit (otherwise interactive).")
@click.option("--system", default=None, help="A system prompt.")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.pass_context
def chat(ctx: click.Context, model: str, message: str | None, system: str | None, temperature: float,
         max_tokens: int) -> None:
    """Chat with a base or fine-tuned MODEL, streaming the answer."""
    client = _client(ctx)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    prompts = [message] if message is not None else None
    while True:
        if prompts is not None:
            if not prompts:
                return
            text = prompts.pop()
        else:
            try:
                text = console.input("[bold cyan]you>[/] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if not text.strip():
                continue
        history.append({"role": "user", "content": text})
        reply = []
        for chunk in client.chat.completions.create(model=model, messages=history, stream=True,
                                                    temperature=temperature, max_tokens=max_tokens):
            for choice in chunk.choices:
                if choice.delta.content:
                    reply.append(choice.delta.content)
                    console.print(choice.delta.content, end="", highlight=False, markup=False)
        console.print()
        history.append({"role": "assistant", "content": "".join(reply)})


from hone.deploy_cli import export, models  # noqa: E402 - commands of their own module, on this group

main.add_command(export)
main.add_command(models)
main.add_command(search)


if __name__ == "__main__":  # pragma: no cover
    main()
