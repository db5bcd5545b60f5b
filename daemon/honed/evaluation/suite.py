"""Evaluation suites as declared by a user: checked before anything runs."""

from __future__ import annotations

from hone.types import EvalSuite
from honed.errors import InvalidRequest
from honed.evaluation import metrics

REFERENCE_METRICS = frozenset({"exact_match", "rouge_l", "chrf", "bleu", "macro_f1", "code_pass"})


def validate_suite(suite: EvalSuite) -> None:
    """Refuse a suite that cannot run: InvalidRequest naming the case or metric to fix."""
    if not suite.cases:
        raise InvalidRequest("the eval suite has no cases", param="honed.eval.cases")
    for name in suite.metrics:
        if name not in metrics.METRICS:
            raise InvalidRequest(f"unknown metric '{name}'; known: {', '.join(sorted(metrics.METRICS))}",
                                 param="honed.eval.metrics")
    for index, case in enumerate(suite.cases):
        if not case.prompt and not case.messages:
            raise InvalidRequest(f"eval case {index} needs a prompt or messages", param=f"honed.eval.cases[{index}]")
        if "contains_all" in suite.metrics and not case.keywords:
            raise InvalidRequest(f"eval case {index} needs keywords for contains_all",
                                 param=f"honed.eval.cases[{index}].keywords")
        needs_reference = REFERENCE_METRICS & set(suite.metrics)
        if needs_reference and case.reference is None:
            raise InvalidRequest(f"eval case {index} needs a reference for {', '.join(sorted(needs_reference))}",
                                 param=f"honed.eval.cases[{index}].reference")
    if not 1 <= suite.max_tokens <= 4096:
        raise InvalidRequest("honed.eval.max_tokens must be between 1 and 4096", param="honed.eval.max_tokens")
