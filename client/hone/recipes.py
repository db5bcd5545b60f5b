"""Recipes: ready-made fine-tuning tasks (data, job settings, eval suite) that `hone recipe run` measures end to end.

A recipe is a folder with a recipe.yaml (base model, method, hyperparameters, which files are train, validation
and the eval suite), its data and a README. The folders live in recipes/ at the root of a source checkout, or in
hone/recipes/ inside an installed wheel (pyproject.toml force-includes them); a path to any folder of that shape
works too, so a copied recipe can be changed and run.

Running one is one honed job: the job measures the base model on the suite, fine-tunes, measures the tuned model
and compares the two with a paired bootstrap; this module uploads the data, creates the job, follows it, prints
the before/after table and saves the job's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from hone.client import Client
from hone.suites import load_suite
from hone.types import EvalSuite, HonedOptions

DEFAULT_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


class RecipeError(ValueError):
    """A recipe that cannot be found or read; the message says which and what to fix."""


class Recipe(msgspec.Struct, forbid_unknown_fields=True):
    """recipe.yaml: what to train on, how, and how to measure it. Paths are relative to the recipe's folder."""

    name: str
    description: str
    primary_metric: str
    """The metric the recipe's claimed gain is about (one of the suite's)."""
    base_model: str = DEFAULT_BASE
    recommended_models: list[str] = msgspec.field(default_factory=list)
    """Bigger bases the recipe also suits (documented; pass one with --model)."""
    train: str = "data/train.jsonl"
    validation: str | None = "data/validation.jsonl"
    """Validation loss while training; the test split (the suite's dataset) is never used for that."""
    suite: str = "suite.yaml"
    method: str = "lora"
    """honed's adapter: lora, qlora or full."""
    seed: int = 42
    hyperparameters: dict[str, Any] = msgspec.field(default_factory=dict)
    """OpenAI's: n_epochs, batch_size, learning_rate_multiplier."""
    honed: dict[str, Any] = msgspec.field(default_factory=dict)
    """honed's job options (lora_rank, max_seq_len, ...) except eval, which is the suite."""
    directory: str = ""
    """Where the recipe was found (set on loading, not written in recipe.yaml)."""

    def path(self, relative: str) -> Path:
        return Path(self.directory) / relative


def recipes_dir() -> Path | None:
    """hone/recipes beside this module (an installed wheel), else recipes/ at the root of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "recipes", here.parents[1] / "recipes"):
        if candidate.is_dir():
            return candidate
    return None


def list_recipes() -> list[Recipe]:
    """Every bundled recipe, by name."""
    root = recipes_dir()
    if root is None:
        return []
    return [load_recipe(path) for path in sorted(root.iterdir()) if (path / "recipe.yaml").is_file()]


def load_recipe(name: str | Path) -> Recipe:
    """A bundled recipe by name, or the recipe in a folder (or its recipe.yaml) given as a path. Raises
    RecipeError naming the recipes there are when it cannot be found, or the field to fix when it is invalid."""
    path = Path(name)
    if path.name == "recipe.yaml":
        path = path.parent
    if not (path / "recipe.yaml").is_file():
        root = recipes_dir()
        if root is None or not (root / str(name) / "recipe.yaml").is_file():
            known = ", ".join(r.name for r in list_recipes()) or "none installed"
            raise RecipeError(f"no recipe '{name}' (known: {known}); give a name or a folder with a recipe.yaml")
        path = root / str(name)
    file = path / "recipe.yaml"
    try:
        recipe = msgspec.yaml.decode(file.read_bytes(), type=Recipe)
        msgspec.convert({**recipe.honed, "adapter": recipe.method}, HonedOptions)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecipeError(f"{file}: not a valid recipe ({exc})") from None
    if "eval" in recipe.honed:
        raise RecipeError(f"{file}: the eval suite is the recipe's `suite` file, not honed.eval")
    return msgspec.structs.replace(recipe, directory=str(path.resolve()))


def first_lines(data: bytes, count: int | None) -> bytes:
    """The first `count` non-blank JSONL lines of `data` (all of them when count is None)."""
    lines = [line for line in data.splitlines(keepends=True) if line.strip()]
    kept = lines if count is None else lines[:count]
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in kept)


def prepare_suite(recipe: Recipe, model: str, subset: int | None) -> EvalSuite:
    """The recipe's suite as the job will run it: cut to subset // 2 cases, and a judge that names the recipe's
    base model judging with the base actually used (the one model honed is sure to serve)."""
    suite = load_suite(recipe.path(recipe.suite))
    if recipe.primary_metric not in suite.metrics:
        raise RecipeError(f"{recipe.name}: primary_metric '{recipe.primary_metric}' is not one of the suite's "
                          f"metrics {suite.metrics}")
    if subset is not None:
        suite = msgspec.structs.replace(suite, cases=suite.cases[:max(1, subset // 2)], inspect_case=0)
    if suite.judge is not None and suite.judge.model == recipe.base_model and model != recipe.base_model:
        suite = msgspec.structs.replace(suite, judge=msgspec.structs.replace(suite.judge, model=model))
    return suite


class RecipeRequest(msgspec.Struct, frozen=True):
    """What running a recipe sends: its data, and the fine-tuning job to create once the data is stored."""

    train: bytes
    train_filename: str
    validation: bytes | None
    validation_filename: str
    job: dict[str, Any]
    """POST /v1/fine_tuning/jobs's body without training_file and validation_file."""


def recipe_request(recipe: Recipe, model: str | None, subset: int | None) -> RecipeRequest:
    """The one way a recipe becomes a job, for `hone recipe run` and for the daemon's /v1/recipes (the studio):
    the first `subset` training examples (all when None), half as many validation examples and test cases."""
    if subset is not None and subset < 2:
        raise RecipeError("subset must be at least 2 (N training examples, N // 2 test cases)")
    model = model or recipe.base_model
    suite = prepare_suite(recipe, model, subset)
    validation = None
    if recipe.validation is not None:
        validation = first_lines(recipe.path(recipe.validation).read_bytes(),
                                 None if subset is None else max(1, subset // 2))
    job = {"model": model, "suffix": recipe.name, "seed": recipe.seed,
           "hyperparameters": dict(recipe.hyperparameters) or None,
           "honed": {**recipe.honed, "adapter": recipe.method, "eval": msgspec.to_builtins(suite)}}
    return RecipeRequest(first_lines(recipe.path(recipe.train).read_bytes(), subset), f"{recipe.name}-train.jsonl",
                         validation, f"{recipe.name}-validation.jsonl", job)


def run_recipe(client: Client, recipe: Recipe, model: str | None, subset: int | None, output_dir: Path,
               console: Console) -> int:
    """Fine-tune and measure `recipe` on `model` (default: the recipe's base) through the daemon behind `client`;
    print the before/after table and write the report into `output_dir`. Returns the exit status (0: the job
    succeeded)."""
    from hone.follow import follow_job

    request = recipe_request(recipe, model, subset)
    model = request.job["model"]
    console.rule(f"[bold]recipe {recipe.name}[/]: {recipe.description}")
    training = client.files.create(request.train, filename=request.train_filename)
    validation = None
    if request.validation is not None:
        validation = client.files.create(request.validation, filename=request.validation_filename).id
    job = client.fine_tuning.jobs.create(training_file=training.id, validation_file=validation, **request.job)
    cases = len(request.job["honed"]["eval"]["cases"])
    console.print(f"{job.id}: {training.examples or 0} training examples, {cases} test cases, "
                  f"{recipe.method} on {model}")
    job = follow_job(client, job.id, console)
    if job.status != "succeeded":
        reason = job.error.message if job.error else job.status
        console.print(f"[red]✗ the job ended {job.status}: {reason}[/]")
        return 1
    console.print(results_table(recipe, model, job, client.fine_tuning.jobs.eval_results(job.id).data))
    judge = ((job.honed or {}).get("result") or {}).get("eval", {}).get("judge")
    if judge:
        console.print(f"LLM judge ({judge.get('judge')}): {judge.get('summary')}", highlight=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = output_dir / f"{recipe.name}-{job.id}.html"
    report.write_bytes(client.fine_tuning.jobs.report(job.id, "html"))
    console.print(f"fine-tuned model: [bold]{job.fine_tuned_model}[/]")
    console.print(f"report: {report}", highlight=False)
    return 0


def _with_ci(value: float | None, low: float | None, high: float | None, sign: str = "") -> str:
    if value is None:
        return "-"
    ci = f" [{low:{sign}.2f}, {high:{sign}.2f}]" if low is not None and high is not None else ""
    return f"{value:{sign}.3f}{ci}"


def results_table(recipe: Recipe, model: str, job: Any, results: list[Any]) -> Table:
    """Base vs fine-tuned per metric, each with its bootstrap 95% CI, and the paired difference with its CI
    (from the job's comparison: significant when it excludes 0); the recipe's primary metric is marked."""
    comparison = (((job.honed or {}).get("result") or {}).get("eval") or {}).get("comparison") or {}
    measured = {(r.phase, r.metric): r for r in results if r.phase in ("baseline", "final")}
    table = Table(title=f"{recipe.name}: {model} before and after fine-tuning (95% CIs)",
                  caption=f"★ primary metric: {recipe.primary_metric}")
    for column in ("metric", "base", "fine-tuned", "difference", "relative", "significant"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, c in comparison.items():
        before, after = measured.get(("baseline", name)), measured.get(("final", name))
        relative, significant = c.get("relative_gain"), c.get("significant")
        table.add_row(
            f"[bold]{name} ★[/]" if name == recipe.primary_metric else name,
            _with_ci(c["before"], before and before.low, before and before.high),
            _with_ci(c["after"], after and after.low, after and after.high),
            _with_ci(c["difference"], c.get("low"), c.get("high"), sign="+"),
            "-" if relative is None else f"{relative:+.0%}",
            {True: "[green]yes[/]", False: "no", None: "-"}[significant])
    return table
