"""Examples -> token ids with a loss mask on assistant tokens, using the tokenizer's own chat template.

The template is rendered turn by turn: the text up to an assistant turn (with the generation prompt) and the
text including it differ by exactly that turn, so the assistant's tokens (its content and the end-of-turn
marker the model must learn to emit) are the ones with labels; everything else is -100. Each segment is
tokenized on its own, so the mask lines up with the ids exactly.
"""

from __future__ import annotations

from typing import Any

import msgspec

from honed.data.example import Example
from honed.errors import DataError

IGNORE = -100


class TokenizedExample(msgspec.Struct, frozen=True):
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    line: int
    positions: list[int] | None = None
    """Position ids restarting at 0 for each example in a packed row; None for one example per row."""

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def segments(tokenizer: Any, example: Example) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, is_assistant) pieces that concatenate to the full render."""
    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    pieces: list[tuple[str, bool]] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:index], generation_prompt=True)
        full = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if not prefix.startswith(done) or not full.startswith(prefix):
            raise DataError(
                f"line {example.line}: the model's chat template does not render turns incrementally; "
                "honed cannot tell assistant tokens apart with it"
            )
        pieces.append((prefix[len(done):], False))
        pieces.append((full[len(prefix):], True))
        done = full
    whole = _render(tokenizer, messages, generation_prompt=False)
    if whole.startswith(done) and len(whole) > len(done):
        pieces.append((whole[len(done):], False))
    return [(text, trained) for text, trained in pieces if text]


def tokenize_example(tokenizer: Any, example: Example, max_len: int) -> TokenizedExample:
    """Ids and labels cut to max_len. A chat example trains on its assistant turns; a text example (continued
    pre-training) on every token, with the end-of-text token after it so the model learns where text ends."""
    ids: list[int] = []
    labels: list[int] = []
    if example.text is not None:
        ids = tokenizer(example.text, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        return TokenizedExample(ids[:max_len], ids[:max_len], len(ids) > max_len, example.line)
    for text, trained in segments(tokenizer, example):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    truncated = len(ids) > max_len
    return TokenizedExample(ids[:max_len], labels[:max_len], truncated, example.line)


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation ready for the assistant's next turn (what generation starts from)."""
    text = _render(tokenizer, messages, generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def pack_examples(examples: list[TokenizedExample], max_len: int) -> list[TokenizedExample]:
    """Short examples packed into rows of at most `max_len` tokens (first-fit decreasing, deterministic).

    Each example keeps its own position ids (restarting at 0), from which the model's attention mask keeps it
    from seeing its row-mates; the first label of each example is dropped, so nothing learns to predict one
    example from the end of another. Fewer, fuller rows: much less padding when most examples are short.
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    rows: list[list[int]] = []
    free: list[int] = []
    for index in order:
        size = len(examples[index].input_ids)
        for row, space in enumerate(free):
            if size <= space:
                rows[row].append(index)
                free[row] -= size
                break
        else:
            rows.append([index])
            free.append(max_len - size)
    packed = []
    for row in rows:
        members = sorted(row)  # file order inside a row
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for index in members:
            example = examples[index]
            ids += example.input_ids
            labels += [IGNORE] + example.labels[1:]
            positions += range(len(example.input_ids))
        packed.append(TokenizedExample(ids, labels, any(examples[i].truncated for i in members),
                                       examples[members[0]].line, positions))
    return packed

