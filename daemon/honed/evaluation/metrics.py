"""Evaluation metrics: pure functions over model outputs and references.

Per-example metrics return one float in [0, 1] per prediction so a caller can bootstrap them
(`honed.evaluation.stats`); corpus metrics return one float. `score` dispatches by name through `METRICS`.
Every function that pairs predictions with references raises ValueError when the lengths differ.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

OTHER_LABEL = "(other)"
# normalize_label strips these from both ends, so no normalized label can collide with OTHER_LABEL.
_EDGE_CHARS = string.whitespace + string.punctuation + "“”‘’«»„"
_FENCED_BLOCK = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_NOT_JSON = object()


def _check_pairs(predictions: Sequence[Any], references: Sequence[Any], what: str = "references") -> None:
    # A bare string is a sequence too; scoring its characters would give a plausible-looking wrong number.
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("pass lists of texts, not a single string")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} {what}; they must pair up")


def _check_not_empty(predictions: Sequence[Any]) -> None:
    if len(predictions) == 0:
        raise ValueError("no predictions to score")


def normalize_label(text: str) -> str:
    """The label as compared: lower-case, without surrounding whitespace, punctuation or quotes, and with
    runs of internal whitespace collapsed to one space ("Billing." and " billing" both give "billing")."""
    return " ".join(text.lower().strip(_EDGE_CHARS).split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """1.0 per example whose normalized prediction equals its normalized reference, else 0.0."""
    _check_pairs(predictions, references)
    return [float(normalize_label(p) == normalize_label(r)) for p, r in zip(predictions, references)]


# The metrics that compare labels: with a suite's label_pattern they compare the labels `extract_labels` finds.
LABEL_METRICS = frozenset({"exact_match", "macro_f1"})


def extract_labels(texts: Sequence[str], pattern: str) -> list[str]:
    """The first group of the first match of `pattern` (a regex with at least one group) in each text, or ""
    where it does not match, so a longer answer can be scored on the label it states ("Intent: refund_request
    ..." -> "refund_request"). Raises ValueError for an invalid regex or one without a group."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"label_pattern {pattern!r} is not a valid regex: {error}") from None
    if compiled.groups < 1:
        raise ValueError(f"label_pattern {pattern!r} needs a group, e.g. 'Intent: (\\w+)': its first group is "
                         "the label")
    labels = []
    for text in texts:
        match = compiled.search(text)
        labels.append((match.group(1) or "") if match else "")
    return labels


def contains_all(predictions: Sequence[str], keyword_lists: Sequence[Sequence[str]]) -> list[float]:
    """1.0 per example whose prediction contains every one of its keywords (case-insensitive substrings),
    else 0.0. An empty keyword list is trivially satisfied."""
    _check_pairs(predictions, keyword_lists, "keyword lists")
    return [float(all(k.casefold() in p.casefold() for k in keywords))
            for p, keywords in zip(predictions, keyword_lists)]


def confusion_matrix(predictions: Sequence[str], references: Sequence[str],
                     labels: Sequence[str] | None = None) -> tuple[list[str], list[list[int]]]:
    """The label names and a square count matrix: rows are references, columns are predictions.

    Labels are normalized and sorted; without `labels` they are the distinct references. A prediction (or,
    with explicit `labels`, a reference) outside the label set is counted under a last "(other)" row/column,
    which appears only when needed. Raises ValueError on mismatched lengths or an empty label set.
    """
    _check_pairs(predictions, references)
    refs = [normalize_label(r) for r in references]
    preds = [normalize_label(p) for p in predictions]
    names = sorted({normalize_label(label) for label in labels} if labels is not None else set(refs))
    if not names:
        raise ValueError("no labels: pass references or an explicit label list")
    known = set(names)
    refs = [r if r in known else OTHER_LABEL for r in refs]
    preds = [p if p in known else OTHER_LABEL for p in preds]
    if OTHER_LABEL in refs or OTHER_LABEL in preds:
        names.append(OTHER_LABEL)
    index = {name: i for i, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for r, p in zip(refs, preds):
        matrix[index[r]][index[p]] += 1
    return names, matrix


def macro_f1(predictions: Sequence[str], references: Sequence[str],
             labels: Sequence[str] | None = None) -> float:
    """The unweighted mean of per-label F1 over the label set (never over "(other)"), from `confusion_matrix`.

    A label with no references and no predictions scores 0 (as scikit-learn's default does). Raises
    ValueError on empty input or mismatched lengths.
    """
    _check_not_empty(predictions)
    names, matrix = confusion_matrix(predictions, references, labels)
    counts = np.array(matrix)
    scores = []
    for i, name in enumerate(names):
        if name == OTHER_LABEL:
            continue
        tp = counts[i, i]
        fp = counts[:, i].sum() - tp
        fn = counts[i, :].sum() - tp
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure per example (rouge-score, Porter stemming).

    rouge-score's tokenizer keeps only ASCII letters and digits, so text in non-Latin scripts scores 0 even
    when identical; an empty text scores 0.
    """
    _check_pairs(predictions, references)
    from rouge_score import rouge_scorer  # here, not at the top: nltk costs the daemon a second at start

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]


def _unit(sacrebleu_score: float) -> float:
    # sacrebleu reports 0-100 and can overshoot 100 by a rounding error (100.00000000000004).
    return min(1.0, max(0.0, sacrebleu_score / 100))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults, one reference per prediction) in [0, 1]. Raises ValueError on empty
    input or mismatched lengths."""
    _check_pairs(predictions, references)
    _check_not_empty(predictions)
    from sacrebleu.metrics import BLEU

    return _unit(BLEU().corpus_score(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults) in [0, 1]. Raises ValueError on empty input or mismatched lengths."""
    _check_pairs(predictions, references)
    _check_not_empty(predictions)
    from sacrebleu.metrics import CHRF

    return _unit(CHRF().corpus_score(list(predictions), [list(references)]).score)


def sentence_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """chrF per example in [0, 1] (sacrebleu's sentence-level chrF)."""
    _check_pairs(predictions, references)
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return [_unit(metric.sentence_score(p, [r]).score) for p, r in zip(predictions, references)]


def perplexity(token_logprobs: Sequence[Sequence[float]]) -> float:
    """exp of the negative mean natural-log probability over all tokens of all examples (not a mean of
    per-example perplexities). Raises ValueError when there are no tokens at all."""
    flat = [lp for example in token_logprobs for lp in example]
    if not flat:
        raise ValueError("perplexity needs at least one token log-probability")
    return math.exp(-math.fsum(flat) / len(flat))


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; they are not JSON, and other parsers reject them.
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str) -> Any:
    """The parsed value of the text, or of the first fenced block that parses; _NOT_JSON otherwise."""
    for candidate in (text, *_FENCED_BLOCK.findall(text)):
        try:
            return json.loads(candidate, parse_constant=_reject_constant)
        except ValueError:
            continue
    return _NOT_JSON


def json_valid(predictions: Sequence[str]) -> list[float]:
    """1.0 per prediction that is JSON, whole or inside a ``` / ```json fenced block, else 0.0.
    Any JSON value counts, a bare number or string included."""
    return [float(_parse_json(p) is not _NOT_JSON) for p in predictions]


def json_schema_match(predictions: Sequence[str], schema: dict[str, Any]) -> list[float]:
    """1.0 per prediction that parses as JSON (as in `json_valid`) and validates against `schema`, else 0.0.
    Raises ValueError when the schema itself is invalid for its JSON Schema draft."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(f"invalid JSON schema: {error.message}") from error
    validator = validator_class(schema)
    parsed = [_parse_json(p) for p in predictions]
    return [float(value is not _NOT_JSON and validator.is_valid(value)) for value in parsed]


def length_stats(predictions: Sequence[str]) -> dict[str, float]:
    """Mean, median and 95th-percentile word counts (whitespace-separated) and mean character count, as
    mean_words, median_words, p95_words, mean_chars. Raises ValueError on empty input."""
    _check_not_empty(predictions)
    words = np.array([len(p.split()) for p in predictions], dtype=float)
    return {"mean_words": float(words.mean()), "median_words": float(np.median(words)),
            "p95_words": float(np.percentile(words, 95)),
            "mean_chars": float(np.mean([len(p) for p in predictions]))}


def distinct_n(predictions: Sequence[str], n: int) -> float:
    """Distinct n-grams over total n-grams across all predictions, on whitespace tokens, case kept; n-grams
    do not cross predictions. 0.0 when there are none. Raises ValueError when n < 1."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grams = [tuple(tokens[i:i + n]) for p in predictions for tokens in [p.split()]
             for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


class MetricSpec(msgspec.Struct, frozen=True):
    name: str
    kind: Literal["per_example", "corpus"]
    description: str
    options: tuple[str, ...] = ()  # keyword options `score` accepts for this metric
    uses_references: bool = True
    higher_is_better: bool = True  # which way a change counts as a regression when comparing runs


class MetricResult(msgspec.Struct, frozen=True):
    name: str
    value: float
    per_example: list[float] | None  # None for corpus metrics, which do not decompose into examples


def extract_code(text: str) -> str:
    """The first fenced code block of a model answer, or the whole answer when it has none."""
    match = re.search(r"```(?:python|py)?[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    return match.group(1) if match else text


def python_syntax(predictions: Sequence[str]) -> list[float]:
    """1.0 per prediction whose code (as `extract_code` finds it) compiles as a Python module, else 0.0.
    Nothing is run."""
    from honed.evaluation.sandbox import syntax_valid

    return [float(syntax_valid(extract_code(p))) for p in predictions]


# all-MiniLM-L6-v2's sentence embedding size: what a style classifier's weights must match.
STYLE_EMBEDDING_DIM = 384


def style_probabilities(vectors: np.ndarray, weights: Sequence[float], bias: float) -> list[float]:
    """sigmoid(w.x + b) per row of `vectors`: a logistic regression's probability of the positive class."""
    w = np.asarray(weights, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[1] != w.shape[0]:
        raise ValueError(f"the style classifier has {w.shape[0]} weights but the embeddings have "
                         f"{vectors.shape[-1]} dimensions")
    logits = vectors.astype(np.float64) @ w + float(bias)
    return [float(v) for v in 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))]


def style_classifier(predictions: Sequence[str], weights: Sequence[float], bias: float) -> list[float]:
    """Per prediction, the probability that it is written in the house style, from a logistic regression on
    its all-MiniLM-L6-v2 embedding (weights fitted elsewhere, e.g. by a recipe's generate script). Raises
    ValueError when the weights do not match the embedding, RuntimeError when the model is not installed."""
    if isinstance(predictions, str):
        raise ValueError("pass a list of texts, not a single string")
    if len(weights) != STYLE_EMBEDDING_DIM:
        raise ValueError(f"the style classifier needs {STYLE_EMBEDDING_DIM} weights (one per all-MiniLM-L6-v2 "
                         f"dimension), got {len(weights)}")
    # Imported on use: the embedding model brings torch and transformers.
    from honed.evaluation.embedding import embed

    return style_probabilities(embed(list(predictions)), weights, bias)


def code_pass(predictions: Sequence[str], tests: Sequence[str]) -> list[float]:
    """1.0 per prediction whose code passes its tests, run in the isolated sandbox (see sandbox.py)."""
    from honed.evaluation.sandbox import run_python

    _check_pairs(predictions, tests)
    return [1.0 if run_python(extract_code(p), t).passed else 0.0 for p, t in zip(predictions, tests)]


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in [
    MetricSpec("exact_match", "per_example", "normalized prediction equals the reference label"),
    MetricSpec("contains_all", "per_example", "prediction contains every keyword of its reference keyword list"),
    MetricSpec("rouge_l", "per_example", "ROUGE-L F-measure with stemming"),
    MetricSpec("json_valid", "per_example", "prediction parses as JSON", uses_references=False),
    MetricSpec("json_schema", "per_example", "prediction is JSON valid against the required `schema` option",
               options=("schema",), uses_references=False),
    MetricSpec("code_pass", "per_example",
               "the generated Python passes the reference's tests in the sandbox (pass@1 over cases)"),
    MetricSpec("style_similarity", "per_example",
               "cosine similarity of prediction and reference sentence embeddings (all-MiniLM-L6-v2), "
               "clipped to [0, 1]"),
    MetricSpec("python_syntax", "per_example", "the answer's code (first fenced block, else all of it) compiles "
               "as Python", uses_references=False),
    MetricSpec("style_classifier", "per_example",
               "probability that the answer is in the house style, from a logistic regression on its "
               "all-MiniLM-L6-v2 embedding (the required `model` option: weights and bias, the suite's "
               "style_model)", options=("model",), uses_references=False),
    MetricSpec("distinct_2", "corpus", "distinct word bigrams over all bigrams of all answers (diversity)",
               uses_references=False),
    MetricSpec("chrf", "corpus", "corpus chrF in [0, 1]"),
    MetricSpec("bleu", "corpus", "corpus BLEU in [0, 1]"),
    MetricSpec("macro_f1", "corpus", "macro-averaged F1 over labels (optional `labels` option)",
               options=("labels",)),
]}


def _style_similarity(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    # Imported on use: the embedding model brings torch and transformers, which importing metrics should not.
    from honed.evaluation.embedding import style_similarity

    return style_similarity(predictions, references)


def _style_classifier(predictions: Sequence[str], options: dict[str, Any]) -> list[float]:
    model = options.get("model")
    if model is None:
        raise ValueError("metric 'style_classifier' needs the option model=<weights and bias> (the suite's "
                         "style_model)")
    # A StyleModel from hone.types, or the same as a plain mapping.
    weights, bias = (model["weights"], model["bias"]) if isinstance(model, dict) else (model.weights, model.bias)
    return style_classifier(predictions, weights, bias)


def _schema_option(options: dict[str, Any]) -> dict[str, Any]:
    if options.get("schema") is None:
        raise ValueError("metric 'json_schema' needs the option schema=<a JSON schema dict>")
    return options["schema"]


_SCORERS: dict[str, Callable[[Sequence[str], Any, dict[str, Any]], list[float] | float]] = {
    "exact_match": lambda p, r, o: exact_match(p, r),
    "contains_all": lambda p, r, o: contains_all(p, r),
    "rouge_l": lambda p, r, o: rouge_l(p, r),
    "json_valid": lambda p, r, o: json_valid(p),
    "json_schema": lambda p, r, o: json_schema_match(p, _schema_option(o)),
    "code_pass": lambda p, r, o: code_pass(p, r),
    "python_syntax": lambda p, r, o: python_syntax(p),
    "style_classifier": lambda p, r, o: _style_classifier(p, o),
    "distinct_2": lambda p, r, o: distinct_n(p, 2),
    "style_similarity": lambda p, r, o: _style_similarity(p, r),
    "chrf": lambda p, r, o: chrf(p, r),
    "bleu": lambda p, r, o: bleu(p, r),
    "macro_f1": lambda p, r, o: macro_f1(p, r, o.get("labels")),
}


def score(name: str, predictions: Sequence[str], references: Sequence[Any] | None = None,
          **options: Any) -> MetricResult:
    """Score `predictions` with the metric called `name`; a per-example metric's value is the mean of its
    per-example scores. References are keyword lists for contains_all; json_valid and json_schema ignore them.

    Raises ValueError for an unknown name (listing the known ones), an option the metric does not take or a
    missing required one, missing references, empty predictions, and whatever the metric itself rejects.
    """
    spec = METRICS.get(name)
    if spec is None:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}")
    unexpected = sorted(set(options) - set(spec.options))
    if unexpected:
        raise ValueError(f"metric {name!r} does not take {unexpected}; it takes {list(spec.options)}")
    if spec.uses_references and references is None:
        raise ValueError(f"metric {name!r} needs references")
    _check_not_empty(predictions)
    result = _SCORERS[name](predictions, references, options)
    if spec.kind == "corpus":
        return MetricResult(name=name, value=float(result), per_example=None)
    return MetricResult(name=name, value=float(np.mean(result)), per_example=result)
