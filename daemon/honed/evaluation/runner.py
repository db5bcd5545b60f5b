"""Running an evaluation suite on a loaded model, and comparing two runs of it.

Generation is greedy (temperature 0), so a suite's numbers are a function of the model alone; the per-example
scores are kept, so the comparison can be a paired bootstrap over the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from hone.types import EvalSuite
from honed.data.tokenize import prompt_ids
from honed.engines.base import GenerationParams
from honed.engines.torch_generate import generate_tokens
from honed.evaluation import metrics, stats
from honed.evaluation.suite import MODEL_METRICS, case_messages
from honed.serving.completion import Completion, decode_stream, stop_token_ids


class MetricSummary(msgspec.Struct):
    name: str
    value: float
    low: float | None = None
    high: float | None = None
    per_example: list[float] | None = None


class SuiteRun(msgspec.Struct):
    """One model's answers to a suite and the metrics over them."""

    suite: str
    outputs: list[str]
    metrics: dict[str, MetricSummary]
    lengths: dict[str, float] | None = None
    """Verbosity of the answers (metrics.length_stats): tuning often changes it, wanted or not."""


class MetricComparison(msgspec.Struct):
    name: str
    before: float
    after: float
    difference: float
    low: float | None
    high: float | None
    relative_gain: float | None
    significant: bool | None
    summary: str


def generate_answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_tokens: int) -> str:
    ids = prompt_ids(tokenizer, messages)
    stops = stop_token_ids(tokenizer, model)
    tokens = generate_tokens(model, ids, GenerationParams(max_new_tokens=max_tokens, temperature=0), stops)
    return "".join(piece.text for piece in decode_stream(tokens, tokenizer, stops, [], Completion()))


def score_outputs(suite: EvalSuite, outputs: list[str]) -> dict[str, MetricSummary]:
    scored: dict[str, MetricSummary] = {}
    for name in suite.metrics:
        if name in MODEL_METRICS:
            continue
        if name == "contains_all":
            references: list[Any] = [case.keywords or [] for case in suite.cases]
        else:
            references = [case.reference or "" for case in suite.cases]
        options = {"schema": suite.json_schema} if name == "json_schema" else {}
        result = metrics.score(name, outputs, references, **options)
        if result.per_example:
            scored[name] = summarize(name, result.per_example)
        else:
            scored[name] = MetricSummary(name, result.value)
    return scored


def summarize(name: str, per_example: list[float]) -> MetricSummary:
    interval = stats.bootstrap_ci(per_example)
    return MetricSummary(name, interval.estimate, interval.low, interval.high, per_example)


def reference_perplexities(model: Any, tokenizer: Any, suite: EvalSuite) -> list[float]:
    """Each case's reference perplexity under the model (teacher-forced after the case's prompt)."""
    from honed.evaluation.token_view import perplexity, reference_logprobs

    return [perplexity(reference_logprobs(model, tokenizer, case_messages(suite, case), case.reference or ""))
            for case in suite.cases]


def run_suite(model: Any, tokenizer: Any, suite: EvalSuite,
              progress: Callable[[int, int], None] | None = None) -> SuiteRun:
    """Greedy answers to every case, then the suite's metrics (with bootstrap CIs where per-example)."""
    outputs = []
    for index, case in enumerate(suite.cases):
        outputs.append(generate_answer(model, tokenizer, case_messages(suite, case), suite.max_tokens))
        if progress is not None:
            progress(index + 1, len(suite.cases))
    scored = score_outputs(suite, outputs)
    if "perplexity" in suite.metrics:
        scored["perplexity"] = summarize("perplexity", reference_perplexities(model, tokenizer, suite))
    return SuiteRun(suite.name, outputs, {name: scored[name] for name in suite.metrics},
                    metrics.length_stats(outputs))


def compare(before: SuiteRun, after: SuiteRun) -> dict[str, MetricComparison]:
    """Per metric: before, after, the paired-bootstrap CI of the difference and whether it excludes 0."""
    out = {}
    for name, first in before.metrics.items():
        second = after.metrics[name]
        if first.per_example and second.per_example:
            comparison = stats.paired_difference(first.per_example, second.per_example)
            out[name] = MetricComparison(
                name, comparison.before.estimate, comparison.after.estimate, comparison.difference.estimate,
                comparison.difference.low, comparison.difference.high, comparison.relative_gain,
                comparison.significant, stats.describe(comparison))
        else:
            gain = second.value / first.value - 1 if first.value else None
            out[name] = MetricComparison(name, first.value, second.value, second.value - first.value, None, None,
                                         gain, None, f"{first.value:.3f} -> {second.value:.3f}")
    return out


def load_model(model_dir: Any, adapter_dir: Any = None) -> tuple[Any, Any]:
    """A base model (and optionally a LoRA adapter on it) ready for greedy generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honed.engines.torch_train import pick_device

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    return model.to(pick_device()).eval(), tokenizer


def metrics_payload(run: SuiteRun) -> dict[str, Any]:
    """What an eval event carries: each metric's value and CI (per-example scores stay in the job result)."""
    return {name: {"value": m.value, "low": m.low, "high": m.high} for name, m in run.metrics.items()}


def headline(run: SuiteRun) -> str:
    parts = []
    for name, m in run.metrics.items():
        ci = f" [{m.low:.2f}, {m.high:.2f}]" if m.low is not None else ""
        parts.append(f"{name}={m.value:.3f}{ci}")
    return ", ".join(parts)
