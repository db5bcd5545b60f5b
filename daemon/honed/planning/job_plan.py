"""Planning one fine-tuning job: its data tokenized, its unset options filled for this machine, its cost
estimated. The worker runs this when a job starts; POST /v1/estimate runs it for a job not yet created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from hone.types import Estimate, PlanChoice
from honed.config import Settings
from honed.data.training_set import TrainingSplit, load_split
from honed.jobs.spec import BASE_LEARNING_RATE, FineTuneSpec
from honed.jobs.store import Store
from honed.planning.defaults import LONGEST_DEFAULT, Plan, plan_options
from honed.planning.estimate import estimate, probe_shape, schedule
from honed.planning.hardware import detect
from honed.planning.model_shape import read_shape
from honed.planning.probe import probe
from honed.planning.suggest import DataFacts, suggest


class JobPlan(msgspec.Struct):
    spec: FineTuneSpec
    """The spec with every option resolved."""
    plan: Plan
    train: TrainingSplit
    valid: TrainingSplit | None


def data_facts(train: TrainingSplit) -> DataFacts:
    lengths = [len(e.input_ids) for e in train.examples]
    return DataFacts(len(lengths), sum(lengths) / max(1, len(lengths)), max(lengths, default=0))


def with_suggestions(spec: FineTuneSpec, parameters: int,
                     train: TrainingSplit) -> tuple[FineTuneSpec, list[PlanChoice]]:
    """The spec with the hyperparameters it left to honed filled in from planning.suggest, and those choices."""
    if not spec.unset:
        return spec, []
    adapter = spec.options.adapter or "lora"  # what honed picks when the adapter is left unset too
    chosen = [c for c in suggest(parameters, adapter, data_facts(train)) if c.field in spec.unset]
    values = {c.field: c.value for c in chosen}
    if "learning_rate" in values:
        values["learning_rate_multiplier"] = values["learning_rate"] / BASE_LEARNING_RATE[adapter]
    return msgspec.structs.replace(spec, **values, unset=[]), chosen


def plan_job(settings: Settings, store: Store, spec: FineTuneSpec, model_dir: Path, tokenizer: Any) -> JobPlan:
    shape = read_shape(model_dir)
    options = spec.options
    cap = options.max_seq_len or min(shape.max_positions, LONGEST_DEFAULT)
    train = load_split(settings.home, store, spec.training_file, tokenizer, cap)
    spec, suggested = with_suggestions(spec, shape.parameters, train)
    plan = plan_options(options, hardware=detect(), shape=shape, lengths=[len(e.input_ids) for e in train.examples],
                        batch_size=spec.batch_size)
    plan = msgspec.structs.replace(plan, choices=suggested + plan.choices)
    max_len = plan.options.max_seq_len
    if max_len is not None and max_len < cap and any(len(e.input_ids) > max_len for e in train.examples):
        train = load_split(settings.home, store, spec.training_file, tokenizer, max_len)
    valid = (load_split(settings.home, store, spec.validation_file, tokenizer, max_len or cap)
             if spec.validation_file else None)
    return JobPlan(msgspec.structs.replace(spec, options=plan.options), plan, train, valid)


def estimate_job(settings: Settings, job: JobPlan, model_dir: Path, model: str, in_process: bool = False) -> Estimate:
    """The job's time and memory, running (or reusing) a probe on this machine (in this process when
    `in_process`: see planning.probe.probe)."""
    spec, options = job.spec, job.spec.options
    steps = schedule(job.train.examples, options, batch_size=spec.batch_size, n_epochs=spec.n_epochs, seed=spec.seed)
    shape = probe_shape(model_dir, job.plan.engine, options, steps, spec.batch_size, job.train.examples)
    measured = probe(shape, settings.probe_cache_dir or settings.home / "cache" / "probes", nice=settings.worker_nice,
                     in_process=in_process)
    return estimate(model=model, engine=job.plan.engine, device=detect().device, options=options, steps=steps,
                    valid=job.valid.examples if job.valid else [], probe=measured,
                    choices=job.plan.choices, samples=job.train.first_prompt is not None,
                    judge_base_url=settings.base_url + "/v1")
