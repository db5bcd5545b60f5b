"""A stored file as the tokenized examples a run trains or validates on (what the worker and estimates share)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from honed.data.files import training_examples
from honed.data.tokenize import TokenizedExample, tokenize_example
from honed.jobs.store import Store


class TrainingSplit(msgspec.Struct):
    examples: list[TokenizedExample]
    """Those with at least one token to learn after truncation."""
    truncated: int
    first_prompt: list[dict[str, str]] | None
    """The first chat example's prompt (what `sample` events answer while training)."""


def load_split(home: Path, store: Store, file_id: str, tokenizer: Any, max_len: int) -> TrainingSplit:
    row = store.get_file(file_id)
    examples, first_prompt = [], None
    for example in training_examples(home, row, tokenizer, max_len):
        if first_prompt is None and example.text is None:
            last_answer = max(i for i, m in enumerate(example.messages) if m.role == "assistant")
            first_prompt = [{"role": m.role, "content": m.content} for m in example.messages[:last_answer]]
        examples.append(tokenize_example(tokenizer, example, max_len))
    return TrainingSplit([e for e in examples if e.trained_tokens > 0], sum(e.truncated for e in examples), first_prompt)
