"""Plain text for continued pre-training -> chunks of about `chunk_tokens` tokens, each a text Example.

Chunks are packed from whole paragraphs (split at blank lines) while they fit; a paragraph longer than a
chunk is cut between words. A word is never cut, so a single word longer than a chunk (a long URL) makes a
chunk of its own, over the size. The file is read paragraph by paragraph.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from honed.data.example import Example, Problem
from honed.data.formats import source
from honed.errors import DataError

TokenCounter = Callable[[str], int]

_WORD = re.compile(r"\S+\s*")


def paragraph_limit(chunk_tokens: int) -> int:
    """Characters after which a paragraph is cut at a line break, so one without blank lines can't fill memory."""
    return max(64 * 1024, chunk_tokens * 16)


def approximate_tokens(text: str) -> int:
    """About four characters a token: the usual rate for English under BPE tokenizers."""
    return -(-len(text) // 4)


class Chunker:
    """Packs paragraphs, in order, into text Examples of at most `budget` tokens."""

    def __init__(self, budget: int, count_tokens: TokenCounter | None = None) -> None:
        if budget < 1:
            raise DataError(f"chunk_tokens must be at least 1, got {budget}")
        self.budget = budget
        self.count = count_tokens or approximate_tokens
        self.separator = self.count("\n\n")
        self.parts: list[str] = []
        self.tokens = 0
        self.line = 0

    def add(self, line: int, paragraph: str) -> Iterator[Example]:
        """Take a paragraph that starts on `line`; yields the chunks it completes."""
        tokens = self.count(paragraph)
        joined = self.tokens + (self.separator if self.parts else 0) + tokens
        if joined <= self.budget:
            if not self.parts:
                self.line = line
            self.parts.append(paragraph)
            self.tokens = joined
        elif tokens <= self.budget:
            yield from self.flush()
            self.parts, self.tokens, self.line = [paragraph], tokens, line
        else:
            yield from self.flush()
            yield from self._cut(line, paragraph)

    def _cut(self, line: int, paragraph: str) -> Iterator[Example]:
        """A paragraph longer than a chunk, cut between words (chunks end at paragraphs where they can)."""
        words: list[str] = []
        tokens = start = newlines = counted = 0
        for match in _WORD.finditer(paragraph):
            newlines += paragraph.count("\n", counted, match.start())
            counted = match.start()
            piece = match.group()
            size = self.count(piece)
            if words and tokens + size > self.budget:
                yield Example((), start, text="".join(words).rstrip())
                words, tokens = [], 0
            if not words:
                start = line + newlines
            words.append(piece)
            tokens += size
        # The rest stays open, so the next paragraph can join it.
        self.parts, self.tokens, self.line = ["".join(words).rstrip()], tokens, start

    def flush(self) -> Iterator[Example]:
        """Yield the chunk being packed, if any."""
        if self.parts:
            yield Example((), self.line, text="\n\n".join(self.parts))
        self.parts, self.tokens = [], 0


def paragraphs(lines: Iterable[tuple[int, str, Problem | None]],
               max_chars: int) -> Iterator[tuple[int, str] | Problem]:
    """(first line, text) of each paragraph; encoding Problems as they come. A paragraph is cut at a line
    break once it passes `max_chars` (see `paragraph_limit`)."""
    current: list[str] = []
    start = size = 0
    for number, text, problem in lines:
        if problem is not None:
            yield problem
        if not text.strip():
            if current:
                yield start, "\n".join(current)
                current = []
            continue
        if not current:
            start, size = number, 0
        current.append(text.rstrip())
        size += len(text)
        if size >= max_chars:
            yield start, "\n".join(current)
            current = []
    if current:
        yield start, "\n".join(current)


def read_text(handle: BinaryIO, chunk_tokens: int,
              count_tokens: TokenCounter | None = None) -> Iterator[Example | Problem]:
    chunker = Chunker(chunk_tokens, count_tokens)
    for item in paragraphs(source.text_lines(handle), paragraph_limit(chunk_tokens)):
        if isinstance(item, Problem):
            yield item
        else:
            yield from chunker.add(*item)
    yield from chunker.flush()
