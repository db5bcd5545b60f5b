"""What a fine-tuning job is: the create request validated and resolved into a stored `FineTuneSpec`.

"auto" hyperparameters are resolved here, at creation, so the job object shows the values it will train with
and a restarted worker trains with exactly the same ones.
"""

from __future__ import annotations

import math
import re

import msgspec

from hone.types import FineTuneCreate, HonedOptions, Hyperparameters
from honed.errors import InvalidRequest
from honed.planning.defaults import check_gradient_accumulation

BASE_LEARNING_RATE = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5}
SUFFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class FineTuneSpec(msgspec.Struct, frozen=True):
    model: str
    training_file: str
    validation_file: str | None
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    seed: int
    suffix: str | None
    options: HonedOptions
    metadata: dict[str, str] | None = None
    search: str | None = None
    """The search this job is a trial of (jobs.search_job), and which trial."""
    trial: int | None = None
    unset: list[str] = msgspec.field(default_factory=list)
    """Hyperparameters the request left to honed ("auto"): placeholders until the job starts, when they are
    suggested from the model and the data (planning.suggest) and recorded; then empty, so a resumed job keeps
    them."""


def _positive(value: float | int, name: str, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise InvalidRequest(f"{name} must be {kind}, got {value!r}", param=name)


def _check_options(options: HonedOptions) -> None:
    for name in ("lora_rank", "checkpoint_interval"):
        _positive(getattr(options, name), f"honed.{name}", integer=True)
    for name in ("max_seq_len", "gradient_accumulation"):
        if getattr(options, name) is not None:
            _positive(getattr(options, name), f"honed.{name}", integer=True)
    if options.max_steps is not None:
        _positive(options.max_steps, "honed.max_steps", integer=True)
    if options.max_minutes is not None:
        _positive(options.max_minutes, "honed.max_minutes")
    if options.learning_rate is not None:
        _positive(options.learning_rate, "honed.learning_rate")
    if options.lora_alpha is not None:
        _positive(options.lora_alpha, "honed.lora_alpha")
    if not 0 <= options.lora_dropout < 1:
        raise InvalidRequest("honed.lora_dropout must be in [0, 1)", param="honed.lora_dropout")
    if not 0 <= options.warmup_ratio < 1:
        raise InvalidRequest("honed.warmup_ratio must be in [0, 1)", param="honed.warmup_ratio")
    if options.max_seq_len is not None and options.max_seq_len > 32768:
        raise InvalidRequest("honed.max_seq_len must be at most 32768", param="honed.max_seq_len")
    if options.lora_rank > 1024:
        raise InvalidRequest("honed.lora_rank must be at most 1024", param="honed.lora_rank")
    if options.eval_interval is not None:
        _positive(options.eval_interval, "honed.eval_interval", integer=True)
    if not 0 <= options.eval_live_cases <= 64:
        raise InvalidRequest("honed.eval_live_cases must be between 0 and 64", param="honed.eval_live_cases")
    if not (math.isfinite(options.regression_threshold) and options.regression_threshold >= 0):
        raise InvalidRequest("honed.regression_threshold must be a number >= 0", param="honed.regression_threshold")
    if len(options.guards) > 8:
        raise InvalidRequest("at most 8 guard suites", param="honed.guards")
    factor = options.divergence_factor
    if not (math.isfinite(factor) and (factor == 0 or factor > 1)):
        raise InvalidRequest("honed.divergence_factor must be 0 (off) or a number above 1, e.g. 10",
                             param="honed.divergence_factor")


def _check_early_stopping(request: FineTuneCreate) -> None:
    """Early stopping needs a value to watch: validation data for valid_loss, else a metric the eval suite's
    live cases measure at each validation point."""
    rule = (request.honed or HonedOptions()).early_stopping
    if rule is None:
        return
    _positive(rule.patience, "honed.early_stopping.patience", integer=True)
    if not (math.isfinite(rule.min_delta) and rule.min_delta >= 0):
        raise InvalidRequest("honed.early_stopping.min_delta must be a number >= 0",
                             param="honed.early_stopping.min_delta")
    check_watched_metric(request, rule.metric, "honed.early_stopping.metric", "early stopping")


def check_watched_metric(request: FineTuneCreate, metric: str, param: str, what: str) -> None:
    """`metric` must be one the job measures at its validation points: the validation loss (which needs a
    validation file) or one of its eval suite's metrics answered live (eval_live_cases > 0)."""
    if metric == "valid_loss":
        if request.validation_file is None:
            raise InvalidRequest(f"{what} on valid_loss needs a validation_file (or set {param} to one of the "
                                 "eval suite's metrics)", param=param)
        return
    options = request.honed or HonedOptions()
    suite = options.eval
    if suite is None or metric not in suite.metrics or options.eval_live_cases == 0:
        measured = ", ".join(suite.metrics) if suite is not None and options.eval_live_cases else "none"
        raise InvalidRequest(f"{what} watches '{metric}', which this job does not measure while it "
                             f"trains; use valid_loss or one of honed.eval's metrics (measured: {measured}) with "
                             "honed.eval_live_cases > 0", param=param)


def request_hyperparameters(request: FineTuneCreate) -> Hyperparameters:
    if request.method is not None and request.method.supervised and request.method.supervised.hyperparameters:
        return request.method.supervised.hyperparameters  # OpenAI's newer place for the same values
    return request.hyperparameters or Hyperparameters()


def validate_request(request: FineTuneCreate) -> None:
    """The checks that need nothing but the request; raises InvalidRequest naming the field to fix."""
    hyper = request_hyperparameters(request)
    _check_options(request.honed or HonedOptions())
    _check_early_stopping(request)
    if hyper.n_epochs != "auto":
        _positive(hyper.n_epochs, "hyperparameters.n_epochs", integer=True)
        if hyper.n_epochs > 100:
            raise InvalidRequest("hyperparameters.n_epochs must be at most 100", param="hyperparameters.n_epochs")
    if hyper.batch_size != "auto":
        _positive(hyper.batch_size, "hyperparameters.batch_size", integer=True)
        if hyper.batch_size > 1024:
            raise InvalidRequest("hyperparameters.batch_size must be at most 1024",
                                 param="hyperparameters.batch_size")
    if hyper.learning_rate_multiplier != "auto":
        _positive(hyper.learning_rate_multiplier, "hyperparameters.learning_rate_multiplier")
    if request.suffix is not None and not SUFFIX_PATTERN.match(request.suffix):
        raise InvalidRequest("suffix must be 1-40 characters of letters, digits, '-' or '_'", param="suffix")
    if request.seed is not None and not 0 <= request.seed < 2**31:
        raise InvalidRequest("seed must be an integer in [0, 2^31)", param="seed")
    if request.honed is not None:
        from honed.evaluation.suite import validate_suite

        if request.honed.eval is not None:
            validate_suite(request.honed.eval)
        names = set()
        for index, guard in enumerate(request.honed.guards):
            validate_suite(guard, f"honed.guards[{index}]")
            if guard.name in names:
                raise InvalidRequest(f"two guard suites are named '{guard.name}'; give each its own name",
                                     param=f"honed.guards[{index}].name")
            names.add(guard.name)


def with_suite_datasets(request: FineTuneCreate, read_file) -> FineTuneCreate:
    """The request with the cases of its suites' uploaded datasets copied in (see with_dataset_cases)."""
    if request.honed is None:
        return request
    from honed.evaluation.suite import with_dataset_cases

    options = request.honed
    suite = with_dataset_cases(options.eval, read_file) if options.eval is not None else None
    guards = [with_dataset_cases(g, read_file, f"honed.guards[{i}]") for i, g in enumerate(options.guards)]
    return msgspec.structs.replace(request, honed=msgspec.structs.replace(options, eval=suite, guards=guards))


def resolve_spec(request: FineTuneCreate, model_name: str, training_examples: int) -> FineTuneSpec:
    """Validate a create request and resolve "auto"; raises InvalidRequest naming the field to fix."""
    validate_request(request)
    hyper = request_hyperparameters(request)
    options = request.honed or HonedOptions()
    n_epochs = 3 if hyper.n_epochs == "auto" else hyper.n_epochs
    batch_size = max(1, min(8, training_examples)) if hyper.batch_size == "auto" else hyper.batch_size
    if options.gradient_accumulation is not None:  # refused now, not when the worker plans the job minutes later
        check_gradient_accumulation(options.gradient_accumulation, batch_size, batch_chosen=hyper.batch_size == "auto")
    multiplier = 1.0 if hyper.learning_rate_multiplier == "auto" else hyper.learning_rate_multiplier
    # an adapter left to honed is LoRA or QLoRA (never full), which share a learning rate
    learning_rate = options.learning_rate or BASE_LEARNING_RATE[options.adapter or "lora"] * float(multiplier)
    unset = [name for name, auto in (("n_epochs", hyper.n_epochs == "auto"), ("batch_size", hyper.batch_size == "auto"),
                                     ("learning_rate", hyper.learning_rate_multiplier == "auto"
                                      and options.learning_rate is None)) if auto]
    return FineTuneSpec(
        model=model_name,
        training_file=request.training_file,
        validation_file=request.validation_file,
        n_epochs=int(n_epochs),
        batch_size=int(batch_size),
        learning_rate_multiplier=float(multiplier),
        learning_rate=learning_rate,
        seed=request.seed if request.seed is not None else 42,
        suffix=request.suffix,
        options=options,
        metadata=request.metadata,
        unset=unset,
    )


def fine_tuned_model_name(base: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's naming: ft:<base>:<suffix>:<job-id> (the suffix slot is empty when none was given)."""
    from honed.models.catalog import short_name

    return f"ft:{short_name(base)}:{suffix or ''}:{job_id}"
