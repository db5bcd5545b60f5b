"""Train / validation / test splits that keep each conversation whole and each stratum in proportion.

Stratified by label when the data has labels, else by length quartile, so a held-out set looks like the data
it is held out from. Synthetic (augmented) examples always train: scoring a model on paraphrases of its own
training data says nothing. The split is a pure function of the examples and the seed.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from typing import IO, Literal

import msgspec

from honed.data.example import Example

Stratify = Literal["auto", "label", "length", "none"]
STRATIFY_CHOICES = ("auto", "label", "length", "none")


class SplitResult(msgspec.Struct, frozen=True):
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    strata: str
    """What the split was stratified by: "label", "length" or "none"."""


def split_examples(
    examples: Sequence[Example],
    *,
    validation: float = 0.1,
    test: float = 0.0,
    seed: int = 0,
    stratify: Stratify = "auto",
) -> SplitResult:
    """Split examples into train, validation and test, stratified and deterministic for a seed.

    - stratify="auto" uses labels when any real example has one (unlabelled ones form their own stratum),
      else length quartiles (characters of all message content, or of the text); "none" is one stratum.
    - Synthetic examples always go to train; fractions apply to the real (non-synthetic) examples.
    - A stratum takes part in a held-out set only if it holds at least 1/fraction examples; smaller strata
      go to train whole. Across the strata that take part, the held-out size is round(size * fraction),
      shared out by largest remainder, and every stratum keeps at least one training example (so when
      validation + test is near 1 and strata are tiny, the test set may come out a little smaller).
    - Each set keeps the input order of its examples.

    Raises ValueError when a fraction is outside [0, 1), the fractions sum to 1 or more, stratify is unknown,
    or stratify="label" is asked of data without labels.
    """
    _check_fractions(validation, test)
    if stratify not in STRATIFY_CHOICES:
        raise ValueError(f"stratify must be one of {', '.join(STRATIFY_CHOICES)}; got {stratify!r}")
    real = [index for index, example in enumerate(examples) if not example.synthetic]
    has_labels = any(examples[index].label is not None for index in real)
    if stratify == "label" and not has_labels and real:
        raise ValueError("stratify='label' needs labelled examples and none has a label; use 'auto' or 'length'")
    strata = "label" if stratify in ("auto", "label") and has_labels else stratify
    if strata == "auto":
        strata = "length"

    groups = _strata(examples, real, strata)
    rng = random.Random(seed)
    # Shuffle each stratum once; the validation takes from the front and test from the back, so the two
    # never overlap and a stratum's split does not depend on how many strata there are.
    for members in groups:
        rng.shuffle(members)
    val_counts = _allocate(groups, validation, [0] * len(groups), rng)
    test_counts = _allocate(groups, test, val_counts, rng)

    assigned: dict[int, str] = {}
    for members, n_val, n_test in zip(groups, val_counts, test_counts):
        for index in members[:n_val]:
            assigned[index] = "validation"
        for index in members[len(members) - n_test:] if n_test else []:
            assigned[index] = "test"
    sets: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for index, example in enumerate(examples):
        sets[assigned.get(index, "train")].append(example)
    return SplitResult(sets["train"], sets["validation"], sets["test"], strata)


def _check_fractions(validation: float, test: float) -> None:
    for name, value in (("validation", validation), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a fraction in [0, 1) (e.g. 0.1 for 10%); got {value!r}")
    if validation + test >= 1:
        raise ValueError(
            f"validation + test must leave something to train on; got {validation} + {test} = {validation + test}"
        )


def example_length(example: Example) -> int:
    """The cheap length used for length strata: characters of the text, or of all message content."""
    if example.text is not None:
        return len(example.text)
    return sum(len(message.content) for message in example.messages)


def _strata(examples: Sequence[Example], real: list[int], strata: str) -> list[list[int]]:
    """The real examples' indices grouped by stratum, the groups in a hash-independent order."""
    if strata == "none":
        return [list(real)] if real else []
    if strata == "label":
        keys = {index: (examples[index].label is None, examples[index].label or "") for index in real}
    else:
        lengths = sorted(example_length(examples[index]) for index in real)
        cuts = [lengths[len(lengths) * quarter // 4] for quarter in (1, 2, 3)] if lengths else []
        keys = {index: sum(example_length(examples[index]) >= cut for cut in cuts) for index in real}
    groups: dict[object, list[int]] = {}
    for index in real:
        groups.setdefault(keys[index], []).append(index)
    return [groups[key] for key in sorted(groups)]


def _allocate(groups: list[list[int]], fraction: float, taken: list[int], rng: random.Random) -> list[int]:
    """How many of each stratum go to a held-out set of this fraction (largest remainder over the strata
    with at least 1/fraction examples); `taken` is what an earlier held-out set already took."""
    counts = [0] * len(groups)
    # The small tolerance lets 10 examples at 0.1 count as one whole example despite float rounding.
    eligible = [i for i, members in enumerate(groups) if fraction > 0 and len(members) * fraction >= 1 - 1e-9]
    if not eligible:
        return counts
    target = round(sum(len(groups[i]) for i in eligible) * fraction)
    remainders = []
    for i in eligible:
        quota = len(groups[i]) * fraction
        counts[i] = min(math.floor(quota + 1e-9), len(groups[i]) - 1 - taken[i])
        remainders.append((-(quota - counts[i]), rng.random(), i))
    # Largest remainder first; ties in a seeded random order, so no label is always the one rounded up.
    for _, _, i in sorted(remainders):
        if sum(counts) >= target:
            break
        if counts[i] + taken[i] < len(groups[i]) - 1:
            counts[i] += 1
    return counts


def example_record(example: Example) -> dict[str, object]:
    """An example as the JSON object it would be read from: OpenAI chat, or {"text": ...} for text."""
    record: dict[str, object]
    if example.text is not None:
        record = {"text": example.text}
    else:
        record = {"messages": [{"role": m.role, "content": m.content} for m in example.messages]}
    if example.label is not None:
        record["label"] = example.label
    return record


def write_jsonl(examples: Iterable[Example], handle: IO[str]) -> int:
    """Write examples to a text handle as JSONL (one example_record per line); returns the lines written."""
    written = 0
    for example in examples:
        handle.write(json.dumps(example_record(example), ensure_ascii=False) + "\n")
        written += 1
    return written
