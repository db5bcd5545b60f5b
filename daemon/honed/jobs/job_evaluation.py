"""A fine-tuning job's measurements: the evidence that tuning helped, and that it broke nothing.

Before training, every suite (the job's eval suite and its guard suites) runs on the base model; while it
trains, a few of the eval suite's cases are scored at each validation point; after, the same suites run on the
tuned model, each pair is compared with a paired bootstrap, guard suites are checked for regressions, an LLM
judge (when the suite names one) says which answers it prefers, and the inspected case gets its token-level
view. Each measurement is an `eval` event plus rows in the store's eval_results table, written together.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from hone.types import EvalSuite, HonedOptions
from honed.config import Settings
from honed.errors import HonedError, NotFound
from honed.evaluation.runner import (MAX_ANSWER_ROWS, MetricComparison, SuiteRun, compare, generate_answer,
                                     generate_answers, headline, load_model, metrics_payload, run_suite)
from honed.evaluation.judge import (cases_for, is_default_endpoint, judge_pairwise, judge_with, judged_cases,
                                    question_text)
from honed.evaluation.suite import MODEL_METRICS, case_messages, higher_is_better
from honed.jobs.store import EvalResultRow, Store


SAMPLE_TOKENS = 48


class JobStopped(Exception):
    """The job was cancelled or paused while it was being measured."""


def regression(metric: str, before: float, after: float, threshold: float) -> bool:
    """Did a guard metric get worse by more than `threshold`? Absolute for scores in [0, 1]; relative for
    perplexity, whose scale depends on the model and text."""
    if metric in MODEL_METRICS:
        return before > 0 and (after - before) / before > threshold
    drop = before - after if higher_is_better(metric) else after - before
    return drop > threshold


def record(store: Store, job_id: str, phase: str, suite: str, message: str, data: dict[str, Any],
           values: dict[str, dict[str, Any]], *, step: int | None = None, model: str | None = None) -> None:
    """One eval event and its metric rows. `values` maps metric -> {"value", "low", "high"}."""
    rows = [EvalResultRow(job_id=job_id, phase=phase, suite=suite, metric=name, value=v.get("value"),
                          low=v.get("low"), high=v.get("high"), step=step, model=model)
            for name, v in values.items() if v.get("value") is not None]
    store.add_eval_results(job_id, message, data, rows)


def record_validation(store: Store, job_id: str, message: str, data: dict[str, Any]) -> None:
    """The training loop's validation event, with its losses and task metrics as rows."""
    values = {name: {"value": data.get(name)} for name in ("valid_loss", "valid_mean_token_accuracy")}
    values.update({name: {"value": value} for name, value in (data.get("task") or {}).items()})
    record(store, job_id, "validation", "validation", message, data, values, step=data.get("step"))


class JobEvaluation:
    """The measurements of one job, in the order the worker asks for them: baseline, probe, final."""

    def __init__(self, store: Store, settings: Settings, job_id: str, model_dir: Path, options: HonedOptions,
                 should_stop: Callable[[], str | None]) -> None:
        self.store, self.settings, self.job_id = store, settings, job_id
        self.model_dir, self.options, self.should_stop = model_dir, options, should_stop
        self.suites: list[tuple[EvalSuite, bool]] = (
            ([(options.eval, False)] if options.eval is not None else []) + [(g, True) for g in options.guards])
        self.baselines: dict[str, SuiteRun] = {}

    # ------------------------------------------------------------------------------------------ phases

    def baseline(self) -> None:
        """Every suite on the base model. A resumed job reuses the baseline it measured before."""
        for suite, guard in self.suites:
            stored = self._stored_run(suite.name, guard)
            if stored is not None:
                self.baselines[suite.name] = stored
        missing = [(s, g) for s, g in self.suites if s.name not in self.baselines]
        if not missing:
            return
        model, tokenizer = load_model(self.model_dir)
        for suite, guard in missing:
            self.baselines[suite.name] = self._run(model, tokenizer, suite, guard, "baseline")

    def probe(self, sample_prompt: list[dict[str, str]] | None = None
              ) -> Callable[[Any, Any, int], dict[str, float]] | None:
        """What the training loop calls at each validation point: the first few eval cases scored on the live
        model (the quick task metric), and one greedy answer to a fixed prompt as a `sample` event, so a
        person watching sees the outputs change. The prompt is the first eval case's, else `sample_prompt`."""
        suite, count = self.options.eval, self.options.eval_live_cases
        subset = (msgspec.structs.replace(suite, cases=suite.cases[:count], inspect_case=0)
                  if suite is not None and count > 0 else None)
        if suite is not None:
            sample_prompt = case_messages(suite, suite.cases[0])
        if subset is None and sample_prompt is None:
            return None

        def score(model: Any, tokenizer: Any, step: int) -> dict[str, float]:
            found: dict[str, float] = {}
            answer = None
            if subset is not None:
                run = run_suite(model, tokenizer, subset)
                found = {name: m.value for name, m in run.metrics.items()}
                answer = run.outputs[0]  # the sample prompt is the first case: no second generation
            if sample_prompt is not None:
                if answer is None:
                    answer = generate_answer(model, tokenizer, sample_prompt, SAMPLE_TOKENS)
                self.store.append_event(self.job_id, "sample", f"Step {step} sample: {answer[:200]}", {
                    "step": step, "prompt": question_text(sample_prompt), "output": answer})
            return found

        return score

    def final(self, output: Path, adapter: bool) -> dict[str, Any] | None:
        """Every suite on the tuned model (a LoRA adapter dir on the base, or a full model dir), compared with
        its baseline; returns the job result's eval summary."""
        if not self.suites:
            return None
        model, tokenizer = load_model(self.model_dir, output) if adapter else load_model(output)
        summary: dict[str, Any] = {"guards": {}, "regressions": []}
        for suite, guard in self.suites:
            before = self.baselines[suite.name]
            after = self._run(model, tokenizer, suite, guard, "final")
            comparison = compare(before, after)
            data: dict[str, Any] = {"phase": "comparison", "suite": suite.name,
                                    "comparison": {k: msgspec.to_builtins(v) for k, v in comparison.items()}}
            if guard:
                data["guard"] = True
            elif suite.judge is not None:
                data["judge"] = self._judge(suite, before, after)
            self._check_stop("comparison")
            self.store.append_event(self.job_id, "eval", f"{'Guard' if guard else 'Fine-tuning'} gain on "
                                    f"'{suite.name}': " + "; ".join(f"{n} {c.summary}" for n, c in comparison.items()),
                                    data)
            if guard:
                summary["guards"][suite.name] = data["comparison"]
                summary["regressions"] += self._regressions(suite.name, comparison)
            else:
                summary.update(suite=suite.name, comparison=data["comparison"], judge=data.get("judge"))
                self._token_view(model, tokenizer, suite)
        return summary

    # ---------------------------------------------------------------------------------------- details

    def _check_stop(self, phase: str) -> None:
        if self.should_stop() is not None:
            raise JobStopped(phase)

    def _run(self, model: Any, tokenizer: Any, suite: EvalSuite, guard: bool, phase: str) -> SuiteRun:
        label = "the base model" if phase == "baseline" else "the fine-tuned model"
        kind = "guard suite" if guard else "suite"
        self.store.append_event(self.job_id, "log", f"Evaluating {label} on {kind} '{suite.name}' "
                                f"({len(suite.cases)} cases)", {"phase": phase, "suite": suite.name})
        # answers are decoded on the cores other programs leave free, as training steps are (imported here: the
        # API imports this module for a constant and must not load torch for it)
        from honed.engines.torch_threads import process_governor

        def progress(done: int, total: int) -> None:
            process_governor().adjust(partial(self.store.append_event, self.job_id))
            self._check_stop(phase)

        run = run_suite(model, tokenizer, suite, progress)
        data: dict[str, Any] = {"phase": phase, "suite": suite.name, "metrics": metrics_payload(run),
                                "run": msgspec.to_builtins(run)}
        if guard:
            data["guard"] = True
        record(self.store, self.job_id, phase, suite.name, f"{phase.capitalize()} on '{suite.name}': "
               f"{headline(run)}", data, data["metrics"], model=None if phase == "baseline" else "tuned")
        return run

    def _stored_run(self, suite: str, guard: bool) -> SuiteRun | None:
        for row in self.store.events_of_type(self.job_id, "eval"):
            data = row.data or {}
            if (data.get("phase") == "baseline" and data.get("suite") == suite
                    and bool(data.get("guard")) == guard and "run" in data):
                return msgspec.convert(data["run"], SuiteRun)
        return None

    def _regressions(self, suite: str, comparison: dict[str, MetricComparison]) -> list[dict[str, Any]]:
        found = []
        threshold = self.options.regression_threshold
        for name, c in comparison.items():
            if not regression(name, c.before, c.after, threshold):
                continue
            data = {"kind": "regression", "suite": suite, "metric": name, "before": c.before, "after": c.after,
                    "difference": c.difference, "threshold": threshold}
            self.store.append_event(self.job_id, "warning", f"Regression on guard suite '{suite}': {name} fell "
                                    f"from {c.before:.3f} to {c.after:.3f} (threshold {threshold:g})", data,
                                    level="warn")
            found.append(data)
        return found

    def _judge(self, suite: EvalSuite, before: SuiteRun, after: SuiteRun) -> dict[str, Any]:
        self.store.append_event(self.job_id, "log", f"Asking judge '{suite.judge.model}' to compare "
                                f"{len(judged_cases(suite))} answer pairs (both orders)", {"phase": "judge"})
        return judge_runs(suite, before, after, self.settings, self.store,
                          lambda done, total: self._check_stop("judge"))

    def _token_view(self, model: Any, tokenizer: Any, suite: EvalSuite) -> None:
        """Per-token probabilities of the inspected case's reference under base and tuned, and one attention
        map of the tuned model. The base's come from the same model with the adapter switched off."""
        from honed.evaluation.token_view import attention_map, reference_logprobs

        case = suite.cases[suite.inspect_case]
        if not case.reference:
            return
        messages = case_messages(suite, case)
        tuned = reference_logprobs(model, tokenizer, messages, case.reference)
        if hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                base = reference_logprobs(model, tokenizer, messages, case.reference)
        else:
            base_model, base_tokenizer = load_model(self.model_dir)
            base = reference_logprobs(base_model, base_tokenizer, messages, case.reference)
            del base_model
        try:
            attention: dict[str, Any] | None = msgspec.to_builtins(attention_map(
                model, tokenizer, messages, case.reference, suite.attention_layer, suite.attention_head))
        except ValueError as exc:  # a layer/head the model does not have: the rest of the view still helps
            self.store.append_event(self.job_id, "warning", f"No attention view: {exc}", {"phase": "tokens"},
                                    level="warn")
            attention = None
        self.store.append_event(self.job_id, "eval", f"Token-level view of case {suite.inspect_case}", {
            "phase": "tokens", "suite": suite.name, "case": suite.inspect_case, "prompt": question_text(messages),
            "reference": case.reference, "tokens": tuned.tokens, "base_logprobs": base.logprobs,
            "tuned_logprobs": tuned.logprobs, "attention": attention})


JUDGE_BATCH = MAX_ANSWER_ROWS // 2
"""Cases judged together in the worker: each is asked in both orders, so a batch is MAX_ANSWER_ROWS chats (which
generate_answers splits further when their prompts are long)."""


def judge_runs(suite: EvalSuite, first: SuiteRun, second: SuiteRun, settings: Settings, store: Store,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The suite's judge on two runs' answers, case by case (second = the model hoped to be better).

    A judge that is a model this daemon serves with torch is asked here, in batches, rather than through the
    HTTP server one request at a time (the creative-writing recipe's 400 requests took 15 minutes): the same
    chat template, stop tokens and greedy decoding, so the same verdicts."""
    spec = suite.judge
    cases = cases_for(suite, first.outputs, second.outputs)
    local = None
    if is_default_endpoint(spec, settings.base_url + "/v1"):
        from honed.serving.registry import ModelRegistry

        try:
            served = ModelRegistry(settings, store).lookup(spec.model)
        except NotFound as exc:
            raise HonedError(f"The judge model '{spec.model}' is not served here: {exc.message} Set judge.model to "
                             "one of them, or judge.base_url to another server", param="judge.model",
                             code="judge_failed") from exc
        local = served if served.engine == "torch" else None
    if local is None:
        result = judge_pairwise(spec, cases, default_base_url=settings.base_url + "/v1",
                                default_api_key=settings.api_key, progress=progress)
    else:
        model, tokenizer = load_model(local.base_dir, local.adapter_dir)
        result = judge_with(spec, cases, lambda chats: generate_answers(model, tokenizer, chats, spec.max_tokens),
                            batch=JUDGE_BATCH, progress=progress)
        del model
    return msgspec.to_builtins(result)
