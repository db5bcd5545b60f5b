"""Evaluation suites as declared by a user: checked before anything runs, and turned into chat prompts."""

from __future__ import annotations

import math
import re

import msgspec

from hone.suites import SuiteFileError, parse_cases
from hone.types import EvalCase, EvalSuite
from honed.errors import InvalidRequest, NotFound
from honed.evaluation import metrics

REFERENCE_METRICS = frozenset({"exact_match", "rouge_l", "chrf", "bleu", "macro_f1", "code_pass", "style_similarity",
                               "perplexity"})
# Metrics computed from the model's probabilities of the reference, not from its generated answers.
MODEL_METRICS = frozenset({"perplexity"})


def higher_is_better(metric: str) -> bool:
    """Which way a metric improves (perplexity falls; every score in [0, 1] rises)."""
    spec = metrics.METRICS.get(metric)
    return spec.higher_is_better if spec is not None else metric not in MODEL_METRICS


def render_prompt(suite: EvalSuite, case: EvalCase, text: str) -> str:
    """`text` wrapped in the suite's prompt_template (KeyError/ValueError/IndexError when it cannot be)."""
    if suite.prompt_template is None:
        return text
    return suite.prompt_template.format_map({**(case.fields or {}), "prompt": text})


def case_messages(suite: EvalSuite, case: EvalCase) -> list[dict[str, str]]:
    """The chat a case sends: its messages (or prompt as one user turn), the template applied to the last user
    turn, and the suite's system prompt first unless the case brings its own."""
    messages = [dict(m) for m in (case.messages or [{"role": "user", "content": case.prompt or ""}])]
    for message in reversed(messages):
        if message.get("role") == "user":
            message["content"] = render_prompt(suite, case, message.get("content", ""))
            break
    if suite.system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": suite.system})
    return messages


def validate_suite(suite: EvalSuite, param: str = "honed.eval") -> None:
    """Refuse a suite that cannot run: InvalidRequest naming the case or field to fix."""
    if not suite.name.strip():
        raise InvalidRequest("the eval suite needs a name", param=f"{param}.name")
    if not suite.cases:
        raise InvalidRequest("the eval suite has no cases (give `cases` or a `dataset`)", param=f"{param}.cases")
    if len(suite.cases) > 10_000:
        raise InvalidRequest("the eval suite has more than 10,000 cases; sample it", param=f"{param}.cases")
    for name in suite.metrics:
        if name not in metrics.METRICS and name not in MODEL_METRICS:
            known = sorted({*metrics.METRICS, *MODEL_METRICS})
            raise InvalidRequest(f"unknown metric '{name}'; known: {', '.join(known)}", param=f"{param}.metrics")
    if "json_schema" in suite.metrics and suite.json_schema is None:
        raise InvalidRequest("the json_schema metric needs the suite's json_schema", param=f"{param}.json_schema")
    if suite.stop_pattern is not None:
        try:
            re.compile(suite.stop_pattern)
        except re.error as exc:
            raise InvalidRequest(f"stop_pattern is not a valid regular expression ({exc})",
                                 param=f"{param}.stop_pattern") from None
    labels = _validate_label_pattern(suite, param)
    _validate_style_model(suite, param)
    needs_reference = REFERENCE_METRICS & set(suite.metrics)
    for index, case in enumerate(suite.cases):
        where = f"{param}.cases[{index}]"
        if not case.prompt and not case.messages:
            raise InvalidRequest(f"eval case {index} needs a prompt or messages", param=where)
        if "contains_all" in suite.metrics and not case.keywords:
            raise InvalidRequest(f"eval case {index} needs keywords for contains_all", param=f"{where}.keywords")
        if needs_reference and case.reference is None:
            raise InvalidRequest(f"eval case {index} needs a reference for {', '.join(sorted(needs_reference))}",
                                 param=f"{where}.reference")
        if labels is not None and case.reference is not None and not labels[index]:
            raise InvalidRequest(f"eval case {index}'s reference has no label for label_pattern "
                                 f"{suite.label_pattern!r}", param=f"{where}.reference")
        try:
            case_messages(suite, case)
        except KeyError as exc:
            raise InvalidRequest(f"eval case {index} has no value for the prompt_template placeholder {exc}; "
                                 "add it to the case's fields", param=f"{where}.fields") from None
        except (ValueError, IndexError) as exc:
            raise InvalidRequest(f"prompt_template is not a valid format string ({exc}); write placeholders as "
                                 "{prompt} or {field} and double literal braces", param=f"{param}.prompt_template"
                                 ) from None
    if not 1 <= suite.max_tokens <= 4096:
        raise InvalidRequest("max_tokens must be between 1 and 4096", param=f"{param}.max_tokens")
    if not 0 <= suite.inspect_case < len(suite.cases):
        raise InvalidRequest(f"inspect_case must be a case index in [0, {len(suite.cases) - 1}]",
                             param=f"{param}.inspect_case")
    if suite.attention_head < 0:
        raise InvalidRequest("attention_head must be >= 0", param=f"{param}.attention_head")
    if suite.judge is not None:
        if not suite.judge.model.strip():
            raise InvalidRequest("judge.model must name the judge model", param=f"{param}.judge.model")
        if suite.judge.base_url is not None and not suite.judge.base_url.startswith(("http://", "https://")):
            raise InvalidRequest("judge.base_url must be an http(s) URL ending in /v1",
                                 param=f"{param}.judge.base_url")
        if not 1 <= suite.judge.max_tokens <= 512:
            raise InvalidRequest("judge.max_tokens must be between 1 and 512", param=f"{param}.judge.max_tokens")
        if suite.judge.cases is not None and suite.judge.cases < 2:
            raise InvalidRequest("judge.cases must be at least 2 (one case gives no confidence interval), or left "
                                 "out to judge every case", param=f"{param}.judge.cases")


def _validate_label_pattern(suite: EvalSuite, param: str) -> list[str] | None:
    """The label_pattern's label of each case's reference when label metrics will use them, else None."""
    if suite.label_pattern is None:
        return None
    try:
        labels = metrics.extract_labels([case.reference or "" for case in suite.cases], suite.label_pattern)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param=f"{param}.label_pattern") from None
    return labels if metrics.LABEL_METRICS & set(suite.metrics) else None


def _validate_style_model(suite: EvalSuite, param: str) -> None:
    if "style_classifier" not in suite.metrics:
        return
    where = f"{param}.style_model"
    if suite.style_model is None:
        raise InvalidRequest("the style_classifier metric needs the suite's style_model (weights and bias)",
                             param=where)
    if isinstance(suite.style_model, str):
        raise InvalidRequest(f"style_model '{suite.style_model}' must be the classifier's weights and bias, not a "
                             "path; `hone` reads a local path for you", param=where)
    weights = suite.style_model.weights
    if len(weights) != metrics.STYLE_EMBEDDING_DIM:
        raise InvalidRequest(f"style_model has {len(weights)} weights; all-MiniLM-L6-v2 embeddings need "
                             f"{metrics.STYLE_EMBEDDING_DIM}", param=f"{where}.weights")
    if not all(math.isfinite(w) for w in [*weights, suite.style_model.bias]):
        raise InvalidRequest("style_model's weights and bias must be finite numbers", param=where)


def with_dataset_cases(suite: EvalSuite, read_file, param: str = "honed.eval") -> EvalSuite:
    """The suite with an uploaded dataset's cases copied in, so the stored job never depends on the file again.

    `read_file(file_id) -> bytes` raises NotFound for an unknown id."""
    if suite.dataset is None:
        return suite
    if not suite.dataset.startswith("file-"):
        raise InvalidRequest(f"dataset '{suite.dataset}' must be an uploaded file id (file-...); `hone` reads "
                             "local paths for you", param=f"{param}.dataset")
    try:
        cases = parse_cases(read_file(suite.dataset), suite.dataset)
    except NotFound:
        raise NotFound(f"dataset '{suite.dataset}' does not exist; upload it with POST /v1/files first",
                       param=f"{param}.dataset") from None
    except SuiteFileError as exc:
        raise InvalidRequest(str(exc), param=f"{param}.dataset") from None
    return msgspec.structs.replace(suite, cases=suite.cases + cases, dataset=None)
