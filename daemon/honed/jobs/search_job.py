"""The worker's side of /v1/fine_tuning/searches: an Optuna study whose trials are child fine-tuning jobs.

A search never trains itself. Its turn on the queue (`advance`) asks the study for a trial and queues that
trial's fine-tuning job; when the job ends, the worker calls `trial_ended`, which tells the study how it went
and advances the search again. So trials take their turn on the queue like any job, a daemon restart resumes
a trial like any job (and requeues the search, whose `advance` finds the trial still in flight), and
cancelling the search cancels its child. Pruning happens inside the child: every validation point's metric is
reported to the study (`TrialReporter`), and the pruner's verdict stops the child after that step.

The study lives in its own journal file under HONED_HOME/searches (Optuna's file storage: appends under a
lock, nothing else to run). The API never opens it: after every change the worker writes the trials, the
best one and the parameter importances into the search's row.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec

from hone.types import TERMINAL_STATUSES, SearchCreate
from honed.config import Settings
from honed.errors import IllegalTransition
from honed.jobs.lifecycle import claim, fail
from honed.jobs.queue import JobQueue
from honed.jobs.store import JobRow, Store, new_id

log = logging.getLogger("honed.worker")

PRUNED = "pruned"
"""The stop reason a pruned trial's training returns with (TrainResult.stopped)."""


def direction(metric: str) -> str:
    from honed.evaluation.suite import higher_is_better

    return "maximize" if metric != "valid_loss" and higher_is_better(metric) else "minimize"


def _storage(settings: Settings, search_id: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = settings.home / "searches"
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / f"{search_id}.journal")))


def _study(settings: Settings, search_id: str, body: SearchCreate) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(settings, search_id)
    done = len(storage.get_all_trials(storage.get_study_id_from_name(search_id))) if _exists(storage, search_id) else 0
    # Each turn loads the study afresh: a sampler seeded the same way every time would propose the same first
    # values every time, so the seed moves on with the trials already asked.
    sampler = optuna.samplers.TPESampler(seed=body.seed + done, n_startup_trials=max(1, min(10, body.n_trials // 2)))
    if body.pruner == "median":
        pruner: Any = optuna.pruners.MedianPruner(n_startup_trials=body.pruner_startup_trials)
    elif body.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=body.trial_max_steps or "auto")
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(study_name=search_id, storage=storage, sampler=sampler, pruner=pruner,
                               direction=direction(body.metric), load_if_exists=True)


def _exists(storage: Any, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def _body(row: JobRow) -> SearchCreate:
    return msgspec.convert(row.spec["request"], SearchCreate)


# ------------------------------------------------------------------------------------------ the search's turns


def advance(search_id: str, settings: Settings, store: Store, queue: JobQueue) -> None:
    """The search's turn: claim it if queued, settle a trial whose job ended unseen (the daemon was down), then
    queue the next trial, or finish when every trial has run. Safe to call again at any point."""
    row = store.get_job(search_id)
    if row.status == "queued" and claim(store, search_id, "Search started") is None:
        return
    row = store.get_job(search_id)
    if row.status != "running":
        return
    body = _body(row)
    try:
        study = _study(settings, search_id, body)
        if not study.trials:
            for params in body.enqueue:
                study.enqueue_trial(params)
        from optuna.trial import TrialState

        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            job = store.get_job(trial.user_attrs["job_id"])
            if job.status not in TERMINAL_STATUSES:
                return  # in flight: its end advances the search
            _settle(study, trial.number, job, body, store)
        _publish(search_id, study, body, store)
        if len(study.trials) - len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) < body.n_trials:
            _start_trial(search_id, row, study, body, settings, store, queue)
        else:
            _finish(search_id, study, body, store)
    except Exception as exc:  # the search ends failed with a reason, whatever broke
        fail(store, search_id, exc, "search_failed", "Search")


def trial_ended(job_id: str, settings: Settings, store: Store, queue: JobQueue) -> None:
    """After the worker ran a job: if it was a search's trial and it has ended, tell the study and move on."""
    job = store.get_job(job_id)
    search_id = job.spec.get("search")
    if not search_id or job.status not in TERMINAL_STATUSES:
        return
    row = store.get_job(search_id)
    body = _body(row)
    study = _study(settings, search_id, body)
    _settle(study, job.spec["trial"], job, body, store)
    if row.status == "running":
        advance(search_id, settings, store, queue)
    else:
        _publish(search_id, study, body, store)


def _start_trial(search_id: str, row: JobRow, study: Any, body: SearchCreate, settings: Settings, store: Store,
                 queue: JobQueue) -> None:
    from honed.jobs.spec import resolve_spec
    from honed.planning.search_space import suggest, with_params

    trial = study.ask()
    params = suggest(trial, body.space)
    request = with_params(body.job, params, body.trial_max_steps, body.trial_max_minutes)
    spec = resolve_spec(request, row.spec["model"], store.get_file(request.training_file).examples)
    spec = msgspec.structs.replace(spec, search=search_id, trial=trial.number,
                                   suffix=spec.suffix or f"trial-{trial.number}")
    job_id = new_id("ftjob")
    trial.set_user_attr("job_id", job_id)
    shown = ", ".join(f"{k} {_shown(v)}" for k, v in params.items())
    store.create_job(job_id, msgspec.to_builtins(spec),
                     message=f"Created fine-tuning job {job_id}: trial {trial.number} of search {search_id}",
                     queued=f"Trial {trial.number} queued ({shown})")
    store.append_event(search_id, "log", f"Trial {trial.number}: {shown} -> job {job_id}",
                       {"kind": "trial_started", "trial": trial.number, "job_id": job_id, "params": params})
    _publish(search_id, study, body, store)
    queue.enqueue(job_id)


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _settle(study: Any, number: int, job: JobRow, body: SearchCreate, store: Store) -> None:
    """Tell the study how the trial's job ended: its metric at its last validation point, pruned, or failed."""
    from optuna.trial import TrialState

    if study.trials[number].state != TrialState.RUNNING:
        return  # told already (a repeated call)
    trial = _trial(study, number)
    result = job.result or {}
    if job.status == "succeeded":
        value, step = last_value(store, job.id, body.metric)
        if value is not None:
            trial.set_user_attr("step", step)
            study.tell(number, value)
            return
        reason = f"{body.metric} was never measured"
    elif job.status == "cancelled" and result.get("pruned_at") is not None:
        study.tell(number, state=TrialState.PRUNED)
        return
    else:
        reason = (job.error or {}).get("message") or f"the job was {job.status}"
    trial.set_user_attr("reason", reason)
    study.tell(number, state=TrialState.FAIL)


def _trial(study: Any, number: int) -> Any:
    """A live handle on a trial asked in an earlier turn (Optuna's Trial wraps a trial id; a FrozenTrial,
    which is what the study lists, cannot report or take attributes)."""
    import optuna

    return optuna.trial.Trial(study, study.trials[number]._trial_id)


def last_value(store: Store, job_id: str, metric: str) -> tuple[float | None, int | None]:
    """The job's metric at its last validation point (the final model's), with that step."""
    rows = [r for r in store.eval_results(job_id) if r.phase == "validation" and r.metric == metric
            and r.value is not None and math.isfinite(r.value)]
    if not rows:
        return None, None
    last = max(rows, key=lambda r: (r.step or 0, r.seq))
    return last.value, last.step


def _finish(search_id: str, study: Any, body: SearchCreate, store: Store) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"no trial finished with a {body.metric}; see each trial's job for why")
    best = study.best_trial
    job = store.get_job(best.user_attrs["job_id"])
    importance = _publish(search_id, study, body, store, final=True)
    ranked = ", ".join(f"{k} {v:.0%}" for k, v in (importance or {}).items())
    try:
        store.transition(search_id, "succeeded", expect={"running"},
                         message=f"Search finished: best trial {best.number}, {body.metric} {best.value:.4g} "
                                 f"({', '.join(f'{k} {_shown(v)}' for k, v in best.params.items())}); "
                                 f"model {job.fine_tuned_model}" + (f"; importance: {ranked}" if ranked else ""))
    except IllegalTransition:  # cancelled as it finished: the cancel stands
        pass


def _importance(study: Any) -> dict[str, float] | None:
    """Each parameter's share of the metric's variance (fANOVA), when the finished trials can say."""
    import optuna

    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # fewer than two finished trials, or nothing varied
        return None
    return {k: float(v) for k, v in found.items() if math.isfinite(v)} or None


def _publish(search_id: str, study: Any, body: SearchCreate, store: Store, final: bool = False) -> dict | None:
    """Write the study's state into the search's row, where the API reads it."""
    from optuna.trial import TrialState

    states = {TrialState.WAITING: "waiting", TrialState.RUNNING: "running", TrialState.COMPLETE: "complete",
              TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    trials = []
    for trial in study.get_trials(deepcopy=False):
        job_id = trial.user_attrs.get("job_id")
        job = store.get_job(job_id) if job_id else None
        pruned_at = ((job.result or {}).get("pruned_at") if job is not None else None)
        step = trial.user_attrs.get("step") if trial.state == TrialState.COMPLETE else pruned_at
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            value = trial.value
        trials.append({"number": trial.number, "job_id": job_id, "state": states.get(trial.state, "failed"),
                       "params": trial.params or trial.system_attrs.get("fixed_params", {}), "value": value,
                       "step": step, "fine_tuned_model": job.fine_tuned_model if job is not None else None,
                       "reason": trial.user_attrs.get("reason"),
                       "curve": {str(k): v for k, v in sorted(trial.intermediate_values.items())}})
    complete = [t for t in trials if t["state"] == "complete"]
    best = None
    if complete:
        best = (min if direction(body.metric) == "minimize" else max)(complete, key=lambda t: t["value"])["number"]
    importance = _importance(study) if final or len(complete) >= 2 else None
    store.update_job(search_id, result={"trials": trials, "best_trial": best, "importance": importance})
    return importance


# ------------------------------------------------------------------------------------------ inside a trial


class TrialReporter:
    """Inside a trial's job: report each validation point's metric to the study and remember whether the
    pruner said stop (the job's should_stop then returns PRUNED, after the step that was validated)."""

    def __init__(self, settings: Settings, store: Store, search_id: str, number: int) -> None:
        row = store.get_job(search_id)
        self.body = _body(row)
        self.study = _study(settings, search_id, self.body)
        self.trial = _trial(self.study, number)
        self.pruned_at: int | None = None
        self.value: float | None = None

    def observe(self, data: dict[str, Any]) -> None:
        metric = self.body.metric
        value = data.get(metric) if metric == "valid_loss" else (data.get("task") or {}).get(metric)
        step = data.get("step")
        if value is None or step is None or self.pruned_at is not None:
            return
        value = float(value) if math.isfinite(value) else (math.inf if direction(metric) == "minimize" else -math.inf)
        self.trial.report(value, int(step))
        if self.trial.should_prune():
            self.pruned_at, self.value = int(step), value

    def reason(self) -> str | None:
        return PRUNED if self.pruned_at is not None else None
