"""A search space: its values reach the right fields of the trial's job, and the sampler stays inside it."""

from __future__ import annotations

import optuna
import pytest

from hone.types import FineTuneCreate, HonedOptions, Hyperparameters, SearchCreate, SearchRange
from honed.errors import InvalidRequest
from honed.jobs.spec import resolve_spec
from honed.planning.search_space import suggest, validate_search, with_params

JOB = FineTuneCreate(model="m", training_file="file-1", validation_file="file-2",
                     hyperparameters=Hyperparameters(n_epochs=2), honed=HonedOptions(lora_rank=8, checkpoint_interval=7))
SPACE = {"learning_rate_multiplier": SearchRange(low=0.5, high=20, log=True),
         "lora_rank": SearchRange(choices=[4, 16]), "n_epochs": SearchRange(low=1, high=3),
         "warmup_ratio": SearchRange(low=0.0, high=0.2)}


def test_a_trials_values_land_in_hyperparameters_and_honed_options_and_the_rest_is_kept():
    job = with_params(JOB, {"learning_rate_multiplier": 4.0, "lora_rank": 16, "n_epochs": 3, "warmup_ratio": 0.1},
                      max_steps=30)
    spec = resolve_spec(job, "m", examples := 40)
    assert (spec.learning_rate_multiplier, spec.n_epochs, spec.batch_size) == (4.0, 3, 8)
    assert spec.learning_rate == pytest.approx(4.0 * 2e-4) and examples == 40
    assert (spec.options.lora_rank, spec.options.warmup_ratio, spec.options.max_steps) == (16, 0.1, 30)
    assert spec.options.checkpoint_interval == 7 and spec.validation_file == "file-2"  # the template's own


def test_the_sampler_proposes_values_inside_the_space_with_the_right_types():
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    for _ in range(8):
        trial = study.ask()
        params = suggest(trial, SPACE)
        assert 0.5 <= params["learning_rate_multiplier"] <= 20 and params["lora_rank"] in (4, 16)
        assert isinstance(params["n_epochs"], int) and 1 <= params["n_epochs"] <= 3
        study.tell(trial, params["learning_rate_multiplier"])


def test_a_space_whose_edge_makes_an_invalid_job_is_refused_before_any_trial_runs():
    body = SearchCreate(job=JOB, space={"lora_rank": SearchRange(low=0, high=8)})
    with pytest.raises(InvalidRequest, match="edge of the space.*lora_rank must be a positive integer"):
        validate_search(body)
    validate_search(SearchCreate(job=JOB, space=SPACE, enqueue=[{"lora_rank": 16, "n_epochs": 1}]))
