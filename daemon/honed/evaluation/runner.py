"""Running an evaluation suite on a loaded model, and comparing two runs of it.

Generation is greedy (temperature 0), so a suite's numbers are a function of the model alone; the per-example
scores are kept, so the comparison can be a paired bootstrap over the same cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from hone.types import EvalSuite
from honed.data.tokenize import prompt_ids
from honed.engines.torch_generate import greedy_batch, kv_bytes_per_token
from honed.evaluation import metrics, stats
from honed.evaluation.suite import MODEL_METRICS, case_messages
from honed.models.trust import model_load_options, tokenizer_load_options
from honed.serving.completion import stop_token_ids


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


MAX_ANSWER_ROWS = 128
"""Most cases answered together. A decode step costs a fixed part and a part per row (SmolLM2-135M on 2 CPU cores:
~130 ms + ~3.6 ms a row), so more rows answer more cases per second: 32 rows 96 tokens/s, 64 152, 128 195; past
~128 the per-row part dominates and a bigger batch only holds more memory."""
ANSWER_CACHE_BYTES = 1 << 30
"""The KV cache a batch of answers may fill (allocated once, for every row's longest possible answer)."""


def batch_sizes(count: int, row_bytes: int) -> list[int]:
    """Rows in each batch that answers `count` cases, a row's KV cache costing `row_bytes`: as few batches as the
    cache budget allows, evenly filled (two batches of 100, not 128 and 72: the step's fixed part is paid per
    batch, its per-row part either way)."""
    if count == 0:
        return []
    rows = max(1, min(MAX_ANSWER_ROWS, ANSWER_CACHE_BYTES // max(1, row_bytes)))
    batches = -(-count // rows)
    return [count // batches + (1 if i < count % batches else 0) for i in range(batches)]


def generate_answers(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], max_tokens: int,
                     progress: Callable[[int, int], None] | None = None,
                     stop_pattern: str | None = None) -> list[str]:
    """Greedy answers to each conversation, in order; prompts of similar length share a batch (less padding).
    An answer matching `stop_pattern` (a regex) ends there."""
    stops = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops, default=0)
    prompts = [prompt_ids(tokenizer, messages) for messages in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    pattern = re.compile(stop_pattern) if stop_pattern else None

    def text(ids: list[int]) -> str:
        return tokenizer.decode([t for t in ids if t not in stops], skip_special_tokens=True)

    finished = (lambda ids: pattern.search(text(ids)) is not None) if pattern is not None else None
    answers = [""] * len(prompts)
    longest = max((len(p) for p in prompts), default=0)
    row_bytes = kv_bytes_per_token(model.config, next(model.parameters()).dtype) * (longest + max_tokens)
    start = 0
    for size in batch_sizes(len(order), row_bytes):
        rows = order[start:start + size]
        start += size
        for row, ids in zip(rows, greedy_batch(model, [prompts[i] for i in rows], max_tokens, stops, pad, finished)):
            answers[row] = text(ids)
            found = pattern.search(answers[row]) if pattern is not None else None
            if found is not None:
                answers[row] = answers[row][:found.end()]
        if progress is not None:
            progress(start, len(order))
    return answers


def generate_answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_tokens: int) -> str:
    return generate_answers(model, tokenizer, [messages], max_tokens)[0]


def score_outputs(suite: EvalSuite, outputs: list[str]) -> dict[str, MetricSummary]:
    scored: dict[str, MetricSummary] = {}
    for name in suite.metrics:
        if name in MODEL_METRICS:
            continue
        predictions = outputs
        if name == "contains_all":
            references: list[Any] = [case.keywords or [] for case in suite.cases]
        else:
            references = [case.reference or "" for case in suite.cases]
        if suite.label_pattern is not None and name in metrics.LABEL_METRICS:
            predictions = metrics.extract_labels(outputs, suite.label_pattern)
            references = metrics.extract_labels(references, suite.label_pattern)
        options = ({"schema": suite.json_schema} if name == "json_schema" else
                   {"model": suite.style_model} if name == "style_classifier" else {})
        result = metrics.score(name, predictions, references, **options)
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
    outputs = generate_answers(model, tokenizer, [case_messages(suite, case) for case in suite.cases],
                               suite.max_tokens, progress, suite.stop_pattern)
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
    """A base model (and optionally a LoRA adapter merged into it) ready for greedy generation. Merged, because an
    evaluation only reads the adapted weights: peft's separate low-rank products on every linear layer made the
    tuned model's 200-case recipe evaluations slower than the base model's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honed.engines.torch_train import pick_device

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or model_dir, **tokenizer_load_options())
    model = AutoModelForCausalLM.from_pretrained(model_dir, **model_load_options(model_dir))
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
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
