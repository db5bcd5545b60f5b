"""Early stopping keeps the best validated checkpoint as the model; the divergence guard ends a run that ran away."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from honed.data.example import Example, Message
from honed.data.tokenize import tokenize_example
from honed.engines.base import StopRule, TrainCallbacks, TrainConfig
from honed.engines.schedule import DivergenceGuard, EarlyStopper, TrainingDiverged
from honed.engines.torch_train import train


def _observe_all(stopper: EarlyStopper, values: list[float], first_step: int = 1) -> list[tuple[int, bool, str | None]]:
    seen = []
    for step, value in enumerate(values, start=first_step):
        improved, stop = stopper.observe(step, {"valid_loss": value, "task": {"exact_match": value}})
        seen.append((step, improved, stop))
        if stop:
            break
    return seen


def test_a_plateau_stops_after_patience_validations_and_remembers_the_best(tmp_path):
    stopper = EarlyStopper(StopRule(patience=2, min_delta=0.01), tmp_path, start_step=0)
    seen = _observe_all(stopper, [2.0, 1.5, 1.2, 1.195, 1.3, 1.1, 0.9])
    # 1.195 is not better than 1.2 by more than min_delta; 1.3 is worse: two without improvement
    assert [s for s, improved, _ in seen if improved] == [1, 2, 3]
    assert seen[-1][0] == 5 and "Early stopping at step 5" in seen[-1][2] and "at step 3" in seen[-1][2]
    assert (stopper.best_step, stopper.best_value) == (3, 1.2)


def test_a_task_metric_improves_upwards(tmp_path):
    stopper = EarlyStopper(StopRule(metric="exact_match", patience=1, higher_is_better=True), tmp_path, 0)
    seen = _observe_all(stopper, [0.1, 0.4, 0.3])
    assert stopper.best_step == 2 and seen[-1][2] is not None


def test_a_resumed_run_forgets_what_came_after_its_checkpoint(tmp_path):
    first = EarlyStopper(StopRule(patience=3), tmp_path, start_step=0)
    _observe_all(first, [1.0, 0.5, 0.7, 0.8])  # steps 1-4; steps 3 and 4 did not improve
    resumed = EarlyStopper(StopRule(patience=3), tmp_path, start_step=3)  # checkpoint at step 3: step 4 is redone
    assert (resumed.best_step, resumed.since_best) == (2, 1)
    fresh = EarlyStopper(StopRule(patience=3), tmp_path, start_step=0)  # a run from scratch starts from nothing
    assert fresh.best_step is None


def test_the_divergence_guard_ignores_one_spike_and_stops_a_runaway():
    guard = DivergenceGuard(factor=10, warmup_steps=2)
    losses = [3.0, 2.0, 1.0, 0.5, 0.5, 0.5, 0.5, 6.0, 0.5, 0.5, 0.5]  # one bad batch: the 4-step mean is 1.9
    assert all(guard.observe(step, loss) is None for step, loss in enumerate(losses, start=1))
    found = [guard.observe(step, loss) for step, loss in enumerate([5.0, 9.0, 9.0, 9.0], start=12)]
    assert found[:2] == [None, None] and "training diverged at step 14" in found[2]
    # a run that memorised its data: 1000x a near-zero lowest is still far below where it started
    memorised = DivergenceGuard(factor=10, warmup_steps=2)
    curve = [3.0, 2.5, 2.0, 1.5] + [0.001] * 8 + [0.96] * 6
    assert all(memorised.observe(step, loss) is None for step, loss in enumerate(curve, start=1))
    off = DivergenceGuard(factor=0, warmup_steps=0)
    assert all(off.observe(step, 10.0**step) is None for step in range(1, 10))


def test_a_resumed_run_remembers_where_training_started(tmp_path):
    first = DivergenceGuard(factor=10, warmup_steps=0, output_dir=tmp_path)
    assert all(first.observe(step, loss) is None for step, loss in enumerate([3.0, 2.5, 2.0, 1.5, 0.1], start=1))
    resumed = DivergenceGuard(factor=10, warmup_steps=0, output_dir=tmp_path)  # after a restart: low loss at first
    curve = [0.1] * 4 + [1.8] * 4  # a new epoch's rise: 18x the resumed run's lowest, below where it all started
    assert all(resumed.observe(step, loss) is None for step, loss in enumerate(curve, start=20))
    assert resumed.first == 2.25


# ------------------------------------------------------------------- the torch engine, on the tiny model


def _pairs(tokenizer, colour: str, count: int):
    return [tokenize_example(tokenizer, Example((Message("user", f"What colour is thing {i}?"),
                                                 Message("assistant", f"Thing {i} is {colour}.")), line=i + 1), 64)
            for i in range(count)]


def _run(tiny_model: Path, out: Path, valid_colour: str, **options):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    events = []
    settings = dict(lora_rank=8, learning_rate=1e-2, n_epochs=12, batch_size=8, checkpoint_interval=1000,
                    eval_interval=2, lora_dropout=0.0, seed=5, warmup_ratio=0.0)
    config = TrainConfig(model_dir=tiny_model, output_dir=out, **{**settings, **options})
    result = train(config, _pairs(tokenizer, "red", 16), _pairs(tokenizer, valid_colour, 8),
                   TrainCallbacks(lambda t, m, d, level="info": events.append((t, m, d)), lambda *a: None,
                                  lambda: None))
    return result, events


def test_validation_that_turns_worse_stops_training_and_the_best_checkpoint_is_the_adapter(tiny_model, tmp_path):
    # training says red, validation says blue: once red is learnt, the validation loss can only rise
    result, events = _run(tiny_model, tmp_path, "blue", early_stopping=StopRule(patience=2))
    validated = [d for t, _, d in events if t == "eval"]
    assert result.early_stopped is not None and result.steps < result.total_steps
    best = min(validated, key=lambda d: d["valid_loss"])
    assert result.best_step == best["step"] < result.steps
    assert [d["step"] for d in validated][-3:] == [result.best_step, result.best_step + 2, result.best_step + 4]
    stopped = [d for t, _, d in events if t == "log" and d.get("kind") == "early_stopping"]
    assert stopped and stopped[0]["best_step"] == result.best_step
    adapter = (result.output_path / "adapter_model.safetensors").read_bytes()
    assert adapter == (tmp_path / "checkpoints" / f"step-{result.best_step}" / "adapter_model.safetensors").read_bytes()


def test_without_a_plateau_it_trains_to_the_end(tiny_model, tmp_path):
    # validation agrees with training: the loss keeps falling, no stop, and the last step is the best
    result, _ = _run(tiny_model, tmp_path, "red", early_stopping=StopRule(patience=2), max_steps=8)
    assert result.early_stopped is None and result.steps == 8 and result.best_step == 8


def test_a_learning_rate_too_high_fails_the_run_once_its_loss_runs_away(tiny_model, tmp_path):
    # measured with the guard off: the loss falls to 1.65 by step 4, then climbs back to 6-8 (a 4-step mean of
    # 2.1 at best, 7.0 at worst); a rate far higher still would not even learn first (it sits at ln(vocab))
    settings = dict(learning_rate=0.03, warmup_ratio=0.25)
    with pytest.raises(TrainingDiverged, match="training diverged at step 1[0-9].*lower the learning rate"):
        _run(tiny_model, tmp_path / "guarded", "red", divergence_factor=2.5, **settings)
    result, _ = _run(tiny_model, tmp_path / "unguarded", "red", divergence_factor=0, **settings)
    assert result.steps == result.total_steps  # the same run, unguarded, wastes every step
