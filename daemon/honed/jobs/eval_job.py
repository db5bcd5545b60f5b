"""The worker's side of /v1/evals: run a suite on one model or two, and compare them."""

from __future__ import annotations

from functools import partial

import msgspec

from hone.types import EvalCreate
from honed.config import Settings
from honed.engines.torch_threads import process_governor
from honed.evaluation.runner import compare, headline, load_model, metrics_payload, run_suite
from honed.jobs.job_evaluation import judge_runs, record
from honed.jobs.lifecycle import claim, fail
from honed.jobs.store import Store
from honed.serving.registry import ModelRegistry


class EvalStopped(Exception):
    pass


def run_eval_job(eval_id: str, settings: Settings, store: Store) -> None:
    job = claim(store, eval_id, "Evaluation started")
    if job is None:
        return
    request = msgspec.convert(job.spec, EvalCreate)
    registry = ModelRegistry(settings, store)

    def progress(done: int, total: int) -> None:
        # answers are decoded on the cores other programs leave free, as training steps are (torch_threads.py)
        process_governor().adjust(partial(store.append_event, eval_id))
        if store.get_job(eval_id).status != "running":
            raise EvalStopped()

    try:
        runs = {}
        for name in request.models:
            served = registry.lookup(name)
            store.append_event(eval_id, "log", f"Evaluating {name} on '{request.suite.name}'", {"model": name})
            model, tokenizer = load_model(served.base_dir, served.adapter_dir)
            runs[name] = run_suite(model, tokenizer, request.suite, progress)
            del model
            payload = metrics_payload(runs[name])
            record(store, eval_id, "model", request.suite.name, f"{name}: {headline(runs[name])}",
                   {"phase": "model", "model": name, "metrics": payload, "run": msgspec.to_builtins(runs[name])},
                   payload, model=name)
        result = {"results": {name: {"metrics": metrics_payload(run), "outputs": run.outputs}
                              for name, run in runs.items()}, "comparison": None}
        if len(runs) == 2:
            first, second = (runs[name] for name in request.models)
            comparison = {k: msgspec.to_builtins(v) for k, v in compare(first, second).items()}
            result["comparison"] = comparison
            data = {"phase": "comparison", "comparison": comparison}
            if request.suite.judge is not None:
                data["judge"] = result["judge"] = judge_runs(request.suite, first, second, settings, store,
                                                                progress)
            store.append_event(eval_id, "eval", "Difference: " + "; ".join(
                f"{k} {v['summary']}" for k, v in comparison.items()), data)
        store.transition(eval_id, "succeeded", expect={"running"}, message="Evaluation finished", result=result)
    except EvalStopped:
        return
    except Exception as exc:  # the evaluation ends failed with a reason, whatever broke
        fail(store, eval_id, exc, "eval_failed", "Evaluation")
