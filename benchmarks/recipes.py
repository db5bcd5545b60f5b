"""The recipes' full runs: does each one's primary metric gain >= 20 % over the base model, significantly, within
15 minutes, and how close was the job's own time and memory estimate?

Each recipe runs exactly as `hone recipe run NAME` does (same request, `hone.recipes.recipe_request`) through one
real daemon: baseline eval on the test split, LoRA fine-tuning, final eval, paired bootstrap. `--runs 2` runs
each recipe twice from the same seed and checks that the two runs' tuned scores agree within the first run's 95%
CI. Prints one row per run: recipe, metric, base, tuned, relative gain, CI of the difference, minutes, and the
estimate's error on time and peak memory; writes benchmarks/results/recipes.json with the machine.

    .venv/bin/python benchmarks/recipes.py [--only customer-support] [--runs 2] [--model ID] [--subset N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from hone.recipes import list_recipes, load_recipe, recipe_request

RESULTS = Path(__file__).resolve().parent / "results"
GAIN_BAR, MINUTES_BAR = 0.20, 15.0


def run(client: Client, recipe, model: str | None, subset: int | None) -> dict:
    request = recipe_request(recipe, model, subset)
    started = time.monotonic()
    training = client.files.create(request.train, filename=request.train_filename)
    validation = (client.files.create(request.validation, filename=request.validation_filename).id
                  if request.validation is not None else None)
    job = client.fine_tuning.jobs.create(training_file=training.id, validation_file=validation, **request.job)
    job = client.fine_tuning.jobs.wait(job.id, poll=2.0, timeout=3 * 3600)
    minutes = (time.monotonic() - started) / 60
    if job.status != "succeeded":
        raise SystemExit(f"{recipe.name}: job {job.id} {job.status}: {job.error}")
    result = job.honed["result"]
    primary = result["eval"]["comparison"][recipe.primary_metric]
    estimate = result.get("estimate") or {}
    return {
        "recipe": recipe.name, "model": request.job["model"], "job": job.id, "metric": recipe.primary_metric,
        "base": primary["before"], "tuned": primary["after"], "difference": primary["difference"],
        "difference_ci": [primary.get("low"), primary.get("high")], "relative_gain": primary.get("relative_gain"),
        "significant": primary.get("significant"), "minutes": round(minutes, 2),
        "all_metrics": {name: {k: c.get(k) for k in ("before", "after", "difference", "low", "high", "significant")}
                        for name, c in result["eval"]["comparison"].items()},
        "judge": result["eval"].get("judge"),
        "estimate": estimate,
        "tuned_ci": _final_ci(client, job.id, recipe.primary_metric),
    }


def _final_ci(client: Client, job_id: str, metric: str) -> list[float | None]:
    for found in client.fine_tuning.jobs.eval_results(job_id).data:
        if found.phase == "final" and found.metric == metric:
            return [found.low, found.high]
    return [None, None]


def passes(row: dict) -> bool:
    """The issue's bar: >= 20 % relative gain (any gain from a base of 0), CI of the difference above 0, in time."""
    gain = row["relative_gain"]
    gained = (gain is not None and gain >= GAIN_BAR) or (row["base"] == 0 and row["tuned"] > 0)
    return gained and (row["difference_ci"][0] or 0) > 0 and row["minutes"] < MINUTES_BAR


def show(row: dict) -> None:
    gain = "-" if row["relative_gain"] is None else f"{row['relative_gain']:+.0%}"
    low, high = row["difference_ci"]
    error = row["estimate"].get("error") or {}
    print(f"{row['recipe']:18s} {row['metric']:16s} {row['base']:6.3f} {row['tuned']:6.3f} {gain:>7s} "
          f"[{low:+.3f}, {high:+.3f}] {row['minutes']:6.1f} "
          f"{error.get('total_seconds', float('nan')):+6.0%} {error.get('peak_memory_bytes', float('nan')):+6.0%} "
          f"{'yes' if passes(row) else 'NO'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="run only these recipes (repeatable)")
    parser.add_argument("--runs", type=int, default=1, help="runs per recipe (2 checks reproducibility)")
    parser.add_argument("--model", default=None, help="base model (default: each recipe's)")
    parser.add_argument("--subset", type=int, default=None, help="a reduced run (not the recipe's numbers)")
    parser.add_argument("--out", default=None, help="results file (default: benchmarks/results/recipes.json)")
    args = parser.parse_args()
    recipes = [load_recipe(name) for name in args.only] if args.only else list_recipes()

    rows = []
    print(f"{'recipe':18s} {'metric':16s} {'base':>6s} {'tuned':>6s} {'gain':>7s} {'CI of difference':>18s} "
          f"{'min':>6s} {'t-err':>6s} {'m-err':>6s} bar", flush=True)
    with tempfile.TemporaryDirectory(prefix="honed-recipes-") as scratch:
        daemon = LocalDaemon(Path(scratch) / "home", free_port()).start()
        try:
            with Client(daemon.base_url, timeout=600) as client:
                for recipe in recipes:
                    for _ in range(args.runs):
                        rows.append(run(client, recipe, args.model, args.subset))
                        show(rows[-1])
        finally:
            daemon.stop()

    reproducible = {}
    for recipe in recipes:
        runs = [r for r in rows if r["recipe"] == recipe.name]
        if len(runs) > 1:
            low, high = runs[0]["tuned_ci"]
            reproducible[recipe.name] = all(low <= r["tuned"] <= high for r in runs[1:])
            print(f"{recipe.name}: tuned {[r['tuned'] for r in runs]}, first run's CI [{low:.3f}, {high:.3f}]: "
                  f"{'agree' if reproducible[recipe.name] else 'DISAGREE'}")
    errors = [r["estimate"]["error"] for r in rows if r["estimate"].get("error")]
    if errors:
        print(f"estimate, worst error: time {max(abs(e['total_seconds']) for e in errors):.0%} (goal 25%), "
              f"memory {max(abs(e['peak_memory_bytes']) for e in errors):.0%} (goal 20%)")
    out = Path(args.out) if args.out else RESULTS / "recipes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "cpus": os.cpu_count()},
        "subset": args.subset, "runs": rows, "reproducible": reproducible,
        "all_pass": all(passes(r) for r in rows)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
