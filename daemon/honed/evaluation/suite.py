"""Evaluation suites as declared by a user: checked before anything runs, and turned into chat prompts."""

from __future__ import annotations

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
