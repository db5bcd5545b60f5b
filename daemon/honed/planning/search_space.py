"""What a hyperparameter search may vary, how a request's space is checked, and how one trial's values become
the fine-tuning job it runs."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from hone.types import FineTuneCreate, HonedOptions, SearchCreate, SearchRange
from honed.errors import InvalidRequest
from honed.jobs.spec import check_watched_metric, request_hyperparameters, validate_request

HYPERPARAMETERS: dict[str, type] = {"learning_rate_multiplier": float, "n_epochs": int, "batch_size": int}
"""Searched in the job's `hyperparameters` (OpenAI's fields)."""
OPTIONS: dict[str, type] = {"lora_rank": int, "lora_alpha": float, "lora_dropout": float, "warmup_ratio": float,
                            "weight_decay": float}
"""Searched in the job's `honed` options."""
SEARCHABLE = {**HYPERPARAMETERS, **OPTIONS}
MAX_TRIALS = 100


def _range_error(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"space.{name}: {message}", param=f"space.{name}")


def _check_range(name: str, spec: SearchRange) -> None:
    kind = SEARCHABLE[name]
    if spec.choices is not None:
        if spec.low is not None or spec.high is not None:
            raise _range_error(name, "give either choices or low and high, not both")
        if not spec.choices or len(set(map(str, spec.choices))) != len(spec.choices):
            raise _range_error(name, "choices must be a non-empty list of different values")
        if any(isinstance(c, (str, bool)) or (kind is int and not float(c).is_integer()) for c in spec.choices):
            raise _range_error(name, f"choices must be {'integers' if kind is int else 'numbers'}")
        return
    if spec.low is None or spec.high is None:
        raise _range_error(name, "give low and high (or a list of choices)")
    if not all(math.isfinite(v) for v in (spec.low, spec.high)) or not spec.low < spec.high:
        raise _range_error(name, f"low must be below high, both finite numbers (got {spec.low}..{spec.high})")
    if kind is int and not (float(spec.low).is_integer() and float(spec.high).is_integer()):
        raise _range_error(name, "low and high must be integers")
    if spec.log and spec.low <= 0:
        raise _range_error(name, "a log-scale range needs low > 0")


def extremes(space: dict[str, SearchRange]) -> list[dict[str, Any]]:
    """The parameter sets at each end of every range, for checking that a job accepts the whole space."""
    lows = {n: (min(s.choices) if s.choices else s.low) for n, s in space.items()}
    highs = {n: (max(s.choices) if s.choices else s.high) for n, s in space.items()}
    return [lows, highs]


def with_params(job: FineTuneCreate, params: dict[str, Any], max_steps: int | None = None,
                max_minutes: float | None = None) -> FineTuneCreate:
    """The job a trial runs: the template with the trial's values (and its step and time budgets) filled in."""
    hyper = msgspec.structs.replace(request_hyperparameters(job), **{
        n: HYPERPARAMETERS[n](v) for n, v in params.items() if n in HYPERPARAMETERS})
    budgets = {k: v for k, v in (("max_steps", max_steps), ("max_minutes", max_minutes)) if v is not None}
    options = msgspec.structs.replace(job.honed or HonedOptions(), **budgets, **{
        n: OPTIONS[n](v) for n, v in params.items() if n in OPTIONS})
    return msgspec.structs.replace(job, hyperparameters=hyper, method=None, honed=options)


def validate_search(body: SearchCreate) -> None:
    """Everything about a search that needs nothing but the request; raises InvalidRequest naming the field."""
    if not body.space:
        raise InvalidRequest("space must name at least one hyperparameter to search: "
                             + ", ".join(SEARCHABLE), param="space")
    for name, spec in body.space.items():
        if name not in SEARCHABLE:
            raise InvalidRequest(f"space.{name} cannot be searched; searchable: {', '.join(SEARCHABLE)}",
                                 param=f"space.{name}")
        _check_range(name, spec)
    if isinstance(body.n_trials, bool) or not 1 <= body.n_trials <= MAX_TRIALS:
        raise InvalidRequest(f"n_trials must be between 1 and {MAX_TRIALS}", param="n_trials")
    if body.trial_max_steps is not None and body.trial_max_steps < 1:
        raise InvalidRequest("trial_max_steps must be a positive integer", param="trial_max_steps")
    if body.trial_max_minutes is not None and not (math.isfinite(body.trial_max_minutes)
                                                   and body.trial_max_minutes > 0):
        raise InvalidRequest("trial_max_minutes must be a positive number", param="trial_max_minutes")
    if not 0 <= body.seed < 2**31:  # Optuna's samplers seed numpy, which takes at most 32 bits
        raise InvalidRequest("seed must be an integer in [0, 2^31)", param="seed")
    if body.pruner_startup_trials < 0:
        raise InvalidRequest("pruner_startup_trials must be >= 0", param="pruner_startup_trials")
    check_watched_metric(body.job, body.metric, "metric", "the search")
    for index, params in enumerate(body.enqueue):
        for name, value in params.items():
            spec = body.space.get(name)
            if spec is None:
                raise InvalidRequest(f"enqueue[{index}].{name} is not in the space", param=f"enqueue[{index}]")
            inside = (value in spec.choices) if spec.choices is not None else (
                not isinstance(value, str) and spec.low <= value <= spec.high)
            if not inside:
                raise InvalidRequest(f"enqueue[{index}].{name} = {value!r} is outside the space",
                                     param=f"enqueue[{index}]")
    for params in extremes(body.space):  # every trial's job must be a valid job
        job = with_params(body.job, params, body.trial_max_steps, body.trial_max_minutes)
        try:
            msgspec.convert(msgspec.to_builtins(job), FineTuneCreate)  # the field bounds the wire type declares
            validate_request(job)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"a trial at the edge of the space would be refused: {exc}", param="space") from None
        except InvalidRequest as exc:
            raise InvalidRequest(f"a trial at the edge of the space would be refused: {exc.message}",
                                 param="space") from None


def suggest(trial: Any, space: dict[str, SearchRange]) -> dict[str, Any]:
    """The trial's values, asked of Optuna's sampler one parameter at a time."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.choices is not None:
            params[name] = trial.suggest_categorical(name, spec.choices)
        elif SEARCHABLE[name] is int:
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    return params
