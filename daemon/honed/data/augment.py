"""Opt-in, seeded augmentation for small chat sets: new synthetic examples that vary the prompt, never the answer.

Three cheap methods, none of which needs a model:
- paraphrase: the final user turn reworded by a meaning-preserving template ("Question: {q}", lowercase, ...);
- system: the system message added, or replaced, by one of a few neutral system prompts;
- fewshot: in a conversation with several exchanges before the final one, those earlier exchanges reordered.
Assistant content is never changed: that is what the model learns to say. Every new example is marked
synthetic (split.py keeps those out of validation and test) and its metadata names the source line and method.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from honed.data.example import Example, Message

METHODS = ("paraphrase", "system", "fewshot")

PARAPHRASE_TEMPLATES = (
    "Question: {q}",
    "{q} Please answer.",
    "I need help: {q}",
    "Can you help me with this? {q}",
    "{q}\n\nThanks!",
)

NEUTRAL_SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a helpful and accurate assistant.",
    "Answer the user's request clearly and accurately.",
    "You are an assistant. Respond to the user's message.",
    "Be helpful, precise and concise.",
)

# A variant that comes out equal to its source or to an earlier variant is drawn again, this many times at most.
MAX_DRAWS = 8


def augment(
    examples: Sequence[Example],
    *,
    factor: float = 1.0,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
) -> list[Example]:
    """Only the new synthetic examples (the caller adds them to the originals), in source order.

    Eligible sources are real chat examples with a user turn; text examples (continued pre-training) and
    already-synthetic ones are not augmented. round(factor x len(eligible)) variants are asked for, spread as
    evenly as they go over the sources (a seeded sample gets the one extra); a source with no distinct
    variant left (e.g. fewshot alone on a single-exchange chat) gets fewer, so fewer may come back. Each variant keeps the source's line and
    label, has synthetic=True and metadata {"augmented_from": source line, "method": method name}.

    Raises ValueError for a negative or non-finite factor, or an unknown or empty list of methods.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
        raise ValueError(f"factor must be a non-negative number of new examples per example; got {factor!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty selection of {', '.join(METHODS)}; got {list(methods)!r}")
    rng = random.Random(seed)
    eligible = [e for e in examples if e.text is None and not e.synthetic and _final_user_index(e) is not None]
    total = round(factor * len(eligible))
    per_example = [total // len(eligible) if eligible else 0] * len(eligible)
    for index in rng.sample(range(len(eligible)), total - sum(per_example)):
        per_example[index] += 1

    made: list[Example] = []
    for source, wanted in zip(eligible, per_example):
        seen = {source.messages}
        applicable = [m for m in METHODS if m in methods and _APPLIES[m](source)]
        for _ in range(wanted):
            for _draw in range(MAX_DRAWS if applicable else 0):
                method = rng.choice(applicable)
                messages = _VARIANTS[method](source, rng)
                if messages not in seen:
                    seen.add(messages)
                    made.append(Example(
                        messages, source.line, label=source.label, synthetic=True,
                        metadata={"augmented_from": source.line, "method": method},
                    ))
                    break
    return made


def _final_user_index(example: Example) -> int | None:
    """The user turn the final assistant answer replies to (None when there is no such turn)."""
    turns = example.messages
    last_assistant = max((i for i, m in enumerate(turns) if m.role == "assistant"), default=-1)
    return max((i for i, m in enumerate(turns[:last_assistant]) if m.role == "user"), default=None)


def paraphrases(question: str) -> list[str]:
    """Meaning-preserving rewordings of a user turn (never equal to it)."""
    stripped = question.strip()
    found = [template.format(q=stripped) for template in PARAPHRASE_TEMPLATES]
    found.append(stripped.rstrip(".?!"))
    # Lowercasing could change code, identifiers or names in longer, structured turns: only plain one-liners.
    if "\n" not in stripped and "`" not in stripped:
        found.append(stripped.lower())
    unique = dict.fromkeys(text for text in found if text.strip() and text != question)
    return list(unique)


def _paraphrase(example: Example, rng: random.Random) -> tuple[Message, ...]:
    index = _final_user_index(example)
    assert index is not None
    turns = list(example.messages)
    turns[index] = Message("user", rng.choice(paraphrases(turns[index].content)))
    return tuple(turns)


def _system(example: Example, rng: random.Random) -> tuple[Message, ...]:
    rest = tuple(m for m in example.messages if m.role != "system")
    current = [m.content for m in example.messages if m.role == "system"]
    choices = [p for p in NEUTRAL_SYSTEM_PROMPTS if p not in current]
    return (Message("system", rng.choice(choices)), *rest)


def _exchanges(example: Example) -> tuple[list[Message], list[tuple[Message, Message]]] | None:
    """(system messages, user/assistant pairs) when the chat is a clean run of exchanges, else None."""
    system = [m for m in example.messages if m.role == "system"]
    dialogue = [m for m in example.messages if m.role != "system"]
    if len(dialogue) % 2 or example.messages[: len(system)] != tuple(system):
        return None
    pairs = list(zip(dialogue[::2], dialogue[1::2]))
    if any(user.role != "user" or answer.role != "assistant" for user, answer in pairs):
        return None
    return system, pairs


def _fewshot_applies(example: Example) -> bool:
    parsed = _exchanges(example)
    # At least two distinct earlier exchanges, or there is no other order to put them in.
    return parsed is not None and len(set(parsed[1][:-1])) >= 2


def _fewshot(example: Example, rng: random.Random) -> tuple[Message, ...]:
    parsed = _exchanges(example)
    assert parsed is not None
    system, pairs = parsed
    earlier = pairs[:-1]
    rng.shuffle(earlier)
    return (*system, *(m for pair in [*earlier, pairs[-1]] for m in pair))


_APPLIES: dict[str, Callable[[Example], bool]] = {
    "paraphrase": lambda example: bool(paraphrases(example.messages[_final_user_index(example)].content)),
    "system": lambda example: True,
    "fewshot": _fewshot_applies,
}
_VARIANTS: dict[str, Callable[[Example, random.Random], tuple[Message, ...]]] = {
    "paraphrase": _paraphrase,
    "system": _system,
    "fewshot": _fewshot,
}
