"""What both engines' training loops share, free of any array library: which examples form each step (the
same batches for the same seed, so a resumed run continues exactly), the learning-rate schedule, the loss
spike watch, the divergence guard and early stopping. Keeping it in one place is what makes an MLX run and a
torch run of the same job comparable."""

from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from honed.data.tokenize import IGNORE, TokenizedExample
from honed.engines.base import StopRule, TrainConfig, TrainResult

PAD_MULTIPLE = 8
"""Batches are padded to a multiple of this many tokens (friendlier matrix shapes, fewer distinct shapes)."""


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indices for one epoch, grouped by similar length to waste little on padding.

    Deterministic in (seed, epoch), so step k of a run is always the same batch: that is what lets a
    resumed run continue exactly where the checkpoint left off.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16  # sort within windows: length-grouping without a fixed curriculum
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class LossWatch:
    """Says when the training loss jumps far above the lowest it has been (a learning rate too high, a bad
    batch): once per episode, so a run that diverges warns once, not every step."""

    def __init__(self, warmup_steps: int, factor: float = 3.0) -> None:
        self.warmup_steps, self.factor = warmup_steps, factor
        self.minimum = math.inf
        self.spiking = False

    def observe(self, step: int, loss: float) -> str | None:
        self.minimum = min(self.minimum, loss)
        high = step > self.warmup_steps and loss > self.factor * self.minimum
        warn = high and not self.spiking
        self.spiking = high
        if not warn:
            return None
        return (f"Loss spiked to {loss:.4f} at step {step}, over {self.factor:g}x its lowest so far "
                f"({self.minimum:.4f}); if it keeps rising, lower the learning rate")


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN/inf or ran away: the job fails with this message instead of training on."""


def write_state(path: Path, value: Any) -> None:
    """A run's small JSON state, whole or not at all: a crash mid-write must not leave a file the resumed run
    cannot read."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)


DISK_FULL_BELOW = 1024 * 1024
"""Free bytes under which a failed checkpoint write is taken for a full disk."""


@contextmanager
def checkpoint_directory(checkpoints_dir: Path, step: int) -> Iterator[Path]:
    """A directory to write step `step`'s checkpoint into, which becomes checkpoints_dir/step-N only once the block
    has written all of it: a checkpoint is complete or absent. When writing fails (a full disk), the part written
    is removed: the earlier checkpoints stay as they were, and the space goes back for the job's failure to be
    recorded."""
    target = checkpoints_dir / f"step-{step}"
    partial = checkpoints_dir / f".step-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        yield partial
    except BaseException as exc:
        # torch.save reports a full disk as its zip writer's "unexpected pos" RuntimeError: say what it was
        full = not isinstance(exc, OSError) and shutil.disk_usage(checkpoints_dir).free < DISK_FULL_BELOW
        shutil.rmtree(partial, ignore_errors=True)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(partial)) from exc
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


class DivergenceGuard:
    """Fails a run whose loss has run away: the mean of the last WINDOW steps above `factor` x the lowest such
    mean and above the first one (where training started), after warm-up. A mean, not one step: one hard batch
    is a spike (warned about), a loss that stays up is a run that diverged. Above the start too, because a run
    that has memorised its data sits near 0 (0.0009 seen), and a new epoch's 0.96 is 1000x that without being
    anything but normal."""

    WINDOW = 4
    STATE_FILE = "divergence.json"

    def __init__(self, factor: float, warmup_steps: int, output_dir: Path | None = None) -> None:
        self.factor, self.warmup_steps = factor, warmup_steps
        self.recent: deque[float] = deque(maxlen=self.WINDOW)
        self.lowest = math.inf
        self.first: float | None = None
        # where the run started, kept in the job's directory: a resumed run's own first steps are the trained
        # model's (low) loss, and a new epoch's rise from there would look like divergence
        self.path = output_dir / self.STATE_FILE if output_dir is not None else None
        if self.path is not None and self.path.is_file():
            self.first = json.loads(self.path.read_text())["first"]

    def observe(self, step: int, loss: float) -> str | None:
        self.recent.append(loss)
        if len(self.recent) < self.WINDOW:
            return None
        mean = sum(self.recent) / len(self.recent)
        if self.first is None:
            self.first = mean
            if self.path is not None:
                write_state(self.path, {"first": mean})
        self.lowest = min(self.lowest, mean)
        if (self.factor <= 0 or step <= self.warmup_steps or mean <= self.factor * self.lowest
                or mean <= self.first):
            return None
        return (f"training diverged at step {step}: the loss (mean of the last {self.WINDOW} steps, {mean:.4f}) "
                f"is over {self.factor:g}x its lowest ({self.lowest:.4f}) and above where training started "
                f"({self.first:.4f}); lower the learning rate")


class EarlyStopper:
    """Early stopping's bookkeeping: every validated value so far, hence the best one, its step, and how many
    validations have passed without beating it by more than min_delta. The values are kept in the job's
    directory, so a run resumed from a checkpoint remembers the ones up to that checkpoint and no later."""

    STATE_FILE = "early_stopping.json"

    def __init__(self, rule: StopRule, output_dir: Path, start_step: int) -> None:
        self.rule, self.path = rule, output_dir / self.STATE_FILE
        self.history: list[tuple[int, float]] = []
        if start_step > 0 and self.path.is_file():
            self.history = [(s, v) for s, v in json.loads(self.path.read_text()) if s <= start_step]
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.since_best = 0
        for step, value in self.history:
            self._count(step, value)

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        gain = value - self.best_value if self.rule.higher_is_better else self.best_value - value
        return gain > self.rule.min_delta

    def _count(self, step: int, value: float) -> None:
        if self._better(value):
            self.best_step, self.best_value, self.since_best = step, value, 0
        else:
            self.since_best += 1

    def observe(self, step: int, validated: dict[str, Any]) -> tuple[bool, str | None]:
        """(whether this step is the new best, why to stop now or None)."""
        metric = self.rule.metric
        value = validated.get(metric) if metric == "valid_loss" else (validated.get("task") or {}).get(metric)
        if value is None or not math.isfinite(value):
            return False, None
        self.history.append((step, float(value)))
        write_state(self.path, self.history)
        self._count(step, float(value))
        if self.since_best < self.rule.patience:
            return self.best_step == step, None
        return False, (f"Early stopping at step {step}: {metric} has not improved by more than "
                       f"{self.rule.min_delta:g} for {self.rule.patience} validations; the best, {self.best_value:.4f} "
                       f"at step {self.best_step}, is the model")


def labelled_count(example: TokenizedExample) -> int:
    """Positions the loss is computed on (labels are shifted by one: the first token is never predicted)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE)


def micro_batches(indices: list[int], accumulation: int) -> list[list[int]]:
    size = math.ceil(len(indices) / accumulation)
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def validation_losses(validated: dict[str, Any]) -> dict[str, Any]:
    return {k: validated[k] for k in ("valid_loss", "valid_mean_token_accuracy") if k in validated}


def lr_factor(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))  # cosine to zero

    return factor


def step_stream(lengths: list[int], config: TrainConfig, start_step: int,
                 total_steps: int) -> Iterator[tuple[int, float, list[int]]]:
    """(step, fractional epoch, batch indices) from start_step on."""
    step = 0
    for epoch in range(config.n_epochs):
        batches = epoch_batches(lengths, config.batch_size, config.seed, epoch)
        for index, batch in enumerate(batches):
            if step >= total_steps:
                return
            if step >= start_step:
                yield step, epoch + (index + 1) / len(batches), batch
            step += 1


class StepReport:
    """After each optimizer step: fail on a NaN or runaway loss, warn on a spike, and emit the metrics event
    (averaged over the steps since the last one). Both engines report through this, so their events are the same."""

    def __init__(self, config: TrainConfig, event: Any, total_steps: int, warmup_steps: int,
                 trained_tokens: int = 0) -> None:
        self.config, self.event, self.total_steps = config, event, total_steps
        self.watch = LossWatch(warmup_steps=max(10, warmup_steps))
        self.guard = DivergenceGuard(config.divergence_factor, max(10, warmup_steps), config.output_dir)
        self.trained_tokens = trained_tokens
        self.last_loss: float | None = None
        self.started = time.monotonic()
        self.steps_this_run = 0
        self._window_loss, self._window_steps, self._window_tokens = 0.0, 0, 0
        self._window_started = self.started

    def step(self, step: int, epoch: float, loss: float, correct: int, labelled: int, tokens: int,
             measure: Callable[[], dict[str, Any]]) -> None:
        """`measure()` gives learning_rate, grad_norm and memory figures; called only when an event is due."""
        self.steps_this_run += 1
        self.trained_tokens += tokens
        if not math.isfinite(loss):
            self.event("warning", f"Loss became {loss} at step {step}", {"kind": "nan_loss", "step": step})
            raise TrainingDiverged(f"loss became {loss} at step {step}; lower the learning rate")
        diverged = self.guard.observe(step, loss)
        if diverged is not None:
            self.event("warning", diverged[0].upper() + diverged[1:], {
                "kind": "diverged", "step": step, "loss": loss, "lowest": self.guard.lowest}, "error")
            raise TrainingDiverged(diverged)
        spike = self.watch.observe(step, loss)
        if spike is not None:
            self.event("warning", spike, {"kind": "loss_spike", "step": step, "loss": loss,
                                          "running_min": self.watch.minimum}, "warn")
        self.last_loss = loss
        self._window_loss += loss
        self._window_steps += 1
        self._window_tokens += tokens
        if step % self.config.logging_interval and step != self.total_steps:
            return
        now = time.monotonic()
        elapsed = now - self.started
        mean = self._window_loss / self._window_steps
        self.event("metrics", f"Step {step}/{self.total_steps}: training loss={mean:.4f}", {
            "step": step, "total_steps": self.total_steps, "epoch": round(epoch, 4), "train_loss": mean,
            "train_mean_token_accuracy": correct / max(labelled, 1),
            "tokens_per_second": self._window_tokens / max(now - self._window_started, 1e-9),
            "trained_tokens": self.trained_tokens, "elapsed_s": elapsed,
            "eta_s": elapsed / self.steps_this_run * (self.total_steps - step), **measure(),
        })
        self._window_loss, self._window_steps, self._window_tokens, self._window_started = 0.0, 0, 0, now


def early_stopper(config: TrainConfig, start_step: int) -> EarlyStopper | None:
    return EarlyStopper(config.early_stopping, config.output_dir, start_step) if config.early_stopping else None


def out_of_time(config: TrainConfig, started: float, step: int, total_steps: int, report: StepReport) -> bool:
    """Whether the run's time budget is spent (then the caller ends its loop, and finish_run validates this step
    and makes it the model, as it would the last one)."""
    if config.max_seconds is None or step >= total_steps or time.monotonic() - started < config.max_seconds:
        return False
    report.event("log", f"The {config.max_seconds / 60:.3g}-minute training budget ran out at step {step} of "
                 f"{total_steps}: this step's weights are the model", {"kind": "time_budget", "step": step,
                                                                       "total_steps": total_steps})
    return True


def at_step_end(step: int, total_steps: int, value: float, config: TrainConfig, validate: Callable[[int], dict],
                save_checkpoint: Callable[[int, dict], None], stopper: EarlyStopper | None = None) -> str | None:
    """Validate and checkpoint when the step is due (the last step is the caller's: see finish_run). Returns
    early stopping's reason to stop, or None to go on."""
    eval_interval = config.eval_interval or config.checkpoint_interval
    at_checkpoint = step % config.checkpoint_interval == 0 and step < total_steps
    if not (at_checkpoint or (step % eval_interval == 0 and step < total_steps)):
        return None
    validated = validate(step)  # checkpoints always carry their validation loss
    improved, stop = stopper.observe(step, validated) if stopper is not None else (False, None)
    if at_checkpoint or improved:  # the best validated weights are always on disk, to become the model
        save_checkpoint(step, {"step": step, "train_loss": value, **validation_losses(validated)})
    return stop


def finish_run(config: TrainConfig, step: int, start_step: int, total_steps: int, stopped: str | None,
               report: StepReport, validate: Callable[[int], dict], save_checkpoint: Callable[[int, dict], None],
               state_files: tuple[str, ...], stopper: EarlyStopper | None = None,
               early_stopped: str | None = None) -> TrainResult:
    """End a run: a stopped one keeps a checkpoint of every finished step (unless cancelled); a finished one is
    validated, checkpointed, and copied to the job's final adapter/ (or model/) without the resume state. With
    early stopping, what is copied is the best validated checkpoint, which need not be the last."""
    checkpoints_dir = config.output_dir / "checkpoints"
    if stopped is not None:
        if stopped != "cancelled" and step > start_step and step % config.checkpoint_interval != 0:
            # paused (or stopped for the daemon): keep every finished step so resuming redoes none
            save_checkpoint(step, {"step": step, "train_loss": report.last_loss})
        return TrainResult(step, total_steps, report.trained_tokens, report.last_loss, checkpoints_dir, stopped)
    if early_stopped is None:  # ran to its last step (an early stop has just validated, and kept its best)
        validated = validate(step)
        if stopper is not None:
            stopper.observe(step, validated)
        save_checkpoint(step, {"step": step, "train_loss": report.last_loss, **validation_losses(validated)})
    best = stopper.best_step if stopper is not None and stopper.best_step is not None else step
    if early_stopped is not None:
        report.event("log", early_stopped, {"kind": "early_stopping", "step": step, "best_step": best,
                                            "metric": stopper.rule.metric, "best_value": stopper.best_value})
    elif best != step:
        report.event("log", f"The best validated checkpoint, step {best} ({stopper.rule.metric} "
                     f"{stopper.best_value:.4f}), is the model, not the last step", {
                         "kind": "best_checkpoint", "step": step, "best_step": best, "metric": stopper.rule.metric,
                         "best_value": stopper.best_value})
    final_dir = config.output_dir / ("model" if config.adapter == "full" else "adapter")
    shutil.rmtree(final_dir, ignore_errors=True)
    shutil.copytree(checkpoints_dir / f"step-{best}", final_dir, ignore=shutil.ignore_patterns(*state_files))
    return TrainResult(step, total_steps, report.trained_tokens, report.last_loss, final_dir,
                       best_step=best if stopper is not None else None, early_stopped=early_stopped)
