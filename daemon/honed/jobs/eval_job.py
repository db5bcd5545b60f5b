"""The worker's side of /v1/evals: run a suite on one model or two, and compare them."""

from __future__ import annotations

import logging
import traceback

import msgspec

from hone.types import EvalCreate
from honed.config import Settings
from honed.errors import HonedError, IllegalTransition
from honed.evaluation.runner import compare, headline, load_model, metrics_payload, run_suite
from honed.jobs.store import Store
from honed.serving.registry import ModelRegistry

log = logging.getLogger("honed.worker")


class EvalStopped(Exception):
    pass


def run_eval_job(eval_id: str, settings: Settings, store: Store) -> None:
    try:
        job = store.transition(eval_id, "running", expect={"queued"}, message="Evaluation started")
    except IllegalTransition as exc:
        log.info("skipping %s: %s", eval_id, exc.message)
        return
    request = msgspec.convert(job.spec, EvalCreate)
    registry = ModelRegistry(settings, store)

    def progress(done: int, total: int) -> None:
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
            store.append_event(eval_id, "eval", f"{name}: {headline(runs[name])}",
                               {"phase": "model", "model": name, "metrics": metrics_payload(runs[name]),
                                "run": msgspec.to_builtins(runs[name])})
        result = {"results": {name: {"metrics": metrics_payload(run), "outputs": run.outputs}
                              for name, run in runs.items()}, "comparison": None}
        if len(runs) == 2:
            first, second = (runs[name] for name in request.models)
            comparison = {k: msgspec.to_builtins(v) for k, v in compare(first, second).items()}
            result["comparison"] = comparison
            store.append_event(eval_id, "eval", "Difference: " + "; ".join(
                f"{k} {v['summary']}" for k, v in comparison.items()), {"phase": "comparison",
                                                                       "comparison": comparison})
        store.transition(eval_id, "succeeded", expect={"running"}, message="Evaluation finished", result=result)
    except EvalStopped:
        return
    except Exception as exc:  # the evaluation ends failed with a reason, whatever broke
        log.error("evaluation %s failed:\n%s", eval_id, traceback.format_exc())
        message = exc.message if isinstance(exc, HonedError) else f"{type(exc).__name__}: {exc}"
        try:
            store.transition(eval_id, "failed", message=f"Evaluation failed: {message}",
                             error={"code": "eval_failed", "message": message, "param": None})
        except IllegalTransition:
            pass
