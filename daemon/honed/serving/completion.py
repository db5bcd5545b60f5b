"""Tokens -> text: incremental decoding, stop strings and finish reasons for the OpenAI endpoints.

Pure with respect to HTTP: it takes a token iterator and yields text pieces, so streaming and non-streaming
responses come from the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from honed.engines.base import GeneratedToken


class TextPiece(msgspec.Struct, frozen=True):
    text: str
    tokens: list[GeneratedToken]


class Completion(msgspec.Struct):
    """Filled in as generation runs; final once the piece iterator is exhausted."""

    completion_tokens: int = 0
    finish_reason: str = "length"


def stop_token_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(i) for i in eos)
    return ids


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could still grow into a stop string (not safe to emit yet)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


def decode_stream(tokens: Iterable[GeneratedToken], tokenizer: Any, stop_ids: set[int], stops: list[str],
                  state: Completion) -> Iterator[TextPiece]:
    """Turn generated tokens into text pieces, ending at a stop token or stop string.

    Decoding the whole generated sequence each time and emitting the new suffix keeps multi-byte characters
    whole; a suffix ending in U+FFFD is held until the next token completes it.
    """
    ids: list[int] = []
    emitted = 0
    pending: list[GeneratedToken] = []
    for token in tokens:
        if token.id in stop_ids:
            state.finish_reason = "stop"
            break
        state.completion_tokens += 1
        ids.append(token.id)
        pending.append(token)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        cut = min((text.find(s, max(0, emitted - len(s))) for s in stops if s in text[max(0, emitted - len(s)):]),
                  default=-1) if stops else -1
        if cut >= 0:
            state.finish_reason = "stop"
            if cut > emitted:
                yield TextPiece(text[emitted:cut], pending)
            return
        safe = len(text) - _held_back(text, stops)
        if safe > emitted:
            yield TextPiece(text[emitted:safe], pending)
            emitted, pending = safe, []
    else:
        state.finish_reason = "length"
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if len(text) > emitted:
        yield TextPiece(text[emitted:], pending)
