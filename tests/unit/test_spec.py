import math

import pytest

from hone.types import FineTuneCreate, HonedOptions, Hyperparameters
from honed.errors import InvalidRequest
from honed.jobs.spec import fine_tuned_model_name, resolve_spec


def request(**kw):
    return FineTuneCreate(model="m", training_file="file-1", **kw)


def test_auto_hyperparameters_are_resolved_at_creation():
    spec = resolve_spec(request(), "HuggingFaceTB/SmolLM2-135M-Instruct", training_examples=5)
    assert (spec.n_epochs, spec.batch_size, spec.learning_rate_multiplier) == (3, 5, 1.0)
    assert spec.learning_rate == pytest.approx(2e-4)


def test_multiplier_scales_the_base_rate_and_an_absolute_rate_wins():
    spec = resolve_spec(request(hyperparameters=Hyperparameters(learning_rate_multiplier=5)), "m", 10)
    assert spec.learning_rate == pytest.approx(1e-3)
    spec = resolve_spec(request(honed=HonedOptions(learning_rate=3e-3)), "m", 10)
    assert spec.learning_rate == pytest.approx(3e-3)


@pytest.mark.parametrize("hyper,param", [
    (Hyperparameters(learning_rate_multiplier=0), "hyperparameters.learning_rate_multiplier"),
    (Hyperparameters(learning_rate_multiplier=-1.5), "hyperparameters.learning_rate_multiplier"),
    (Hyperparameters(learning_rate_multiplier=math.nan), "hyperparameters.learning_rate_multiplier"),
    (Hyperparameters(n_epochs=0), "hyperparameters.n_epochs"),
    (Hyperparameters(batch_size=-2), "hyperparameters.batch_size"),
])
def test_non_positive_hyperparameters_are_refused(hyper, param):
    with pytest.raises(InvalidRequest) as caught:
        resolve_spec(request(hyperparameters=hyper), "m", 10)
    assert caught.value.param == param and "must be a positive" in caught.value.message


@pytest.mark.parametrize("options,param", [
    (HonedOptions(learning_rate=0.0), "honed.learning_rate"),
    (HonedOptions(lora_rank=0), "honed.lora_rank"),
    (HonedOptions(lora_dropout=1.0), "honed.lora_dropout"),
    (HonedOptions(max_steps=-1), "honed.max_steps"),
])
def test_bad_honed_options_name_their_field(options, param):
    with pytest.raises(InvalidRequest) as caught:
        resolve_spec(request(honed=options), "m", 10)
    assert caught.value.param == param


def test_suffix_must_be_a_simple_name():
    with pytest.raises(InvalidRequest, match="suffix"):
        resolve_spec(request(suffix="../etc"), "m", 10)


def test_fine_tuned_names_follow_openai():
    assert fine_tuned_model_name("HuggingFaceTB/SmolLM2-135M-Instruct", "demo", "ftjob-1") == \
        "ft:SmolLM2-135M-Instruct:demo:ftjob-1"
    assert fine_tuned_model_name("/models/tiny", None, "ftjob-2") == "ft:tiny::ftjob-2"
