"""What a fine-tuning job is made of on the command line: the options `hone jobs create/estimate/suggest` and
`hone search run` share, and the request they make (local data files uploaded first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hone.client import Client, HoneError
from hone.suites import load_suite


def job_options(command):
    """The options shared by `jobs create` and `jobs estimate` (one job description, two uses)."""
    options = [
        click.option("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct", show_default=True),
        click.option("--training-file", "--file", "training_file", required=True,
                     help="A file id (file-...) or a local JSONL path to upload first."),
        click.option("--validation-file", default=None),
        click.option("--suffix", default=None),
        click.option("--epochs", type=int, default=None),
        click.option("--batch-size", type=int, default=None),
        click.option("--lr-multiplier", type=float, default=None),
        click.option("--adapter", type=click.Choice(["lora", "qlora", "full"]), default=None,
                     help="Default: chosen for this machine (LoRA, or QLoRA when memory is tight)."),
        click.option("--engine", type=click.Choice(["auto", "torch", "mlx"]), default=None),
        click.option("--lora-rank", type=int, default=None),
        click.option("--max-steps", type=int, default=None),
        click.option("--max-seq-len", type=int, default=None),
        click.option("--seed", type=int, default=None),
        click.option("--eval", "eval_suite", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="An eval suite file (YAML/JSON) measured before and after training."),
        click.option("--guard", "guards", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     multiple=True, help="A guard suite file the tuned model must not regress on (repeatable)."),
        click.option("--eval-interval", type=int, default=None, help="Validate every N steps (default: at checkpoints)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def job_request(client: Client, args: dict[str, Any]) -> dict[str, Any]:
    """The create-job request from `_job_options` values (local data files are uploaded first)."""

    def file_id(ref: str | None) -> str | None:
        if ref is None or ref.startswith("file-"):
            return ref
        if not Path(ref).is_file():
            raise HoneError(0, f"'{ref}' is neither a file id (file-...) nor an existing file")
        return client.files.create(Path(ref)).id

    hyper = {k: v for k, v in {"n_epochs": args["epochs"], "batch_size": args["batch_size"],
                               "learning_rate_multiplier": args["lr_multiplier"]}.items() if v is not None}
    names = ("adapter", "engine", "lora_rank", "max_steps", "max_seq_len", "eval_interval")
    honed: dict[str, Any] = {k: args[k] for k in names if args[k] is not None}
    if args["eval_suite"] is not None:
        honed["eval"] = load_suite(args["eval_suite"])
    if args["guards"]:
        honed["guards"] = [load_suite(path) for path in args["guards"]]
    return dict(model=args["model"], training_file=file_id(args["training_file"]),
                validation_file=file_id(args["validation_file"]), suffix=args["suffix"], seed=args["seed"],
                hyperparameters=hyper or None, honed=honed or None)
