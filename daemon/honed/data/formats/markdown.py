"""Markdown documents -> question/answer Examples where the document asks and answers, text elsewhere.

Nothing is invented: a prompt is only ever a question the author wrote.
- A section whose heading is a question (it ends with "?", or starts with "Q:" / "Question:") becomes a
  chat example: the heading is the user turn, the section's body (up to the next heading) the answer.
- In any other section, `Q: ... A: ...` pairs (also `**Q:** ... **A:** ...`, `Question:` / `Answer:`)
  become chat examples: the question runs to its `A:` line, the answer to the next `Q:` or heading.
- Everything else (prose, lists, code) becomes text examples for continued pre-training, packed with its
  headings into chunks of about `chunk_tokens` tokens like plain text. Headings with no prose under them
  are left out.
Only ATX headings (`#` ... `######`) count, and neither headings nor Q:/A: inside fenced code. The file is
streamed; only the question and answer being read are held whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from honed.data.example import Example, Message, Problem
from honed.data.formats import source
from honed.data.formats.text import Chunker, TokenCounter, paragraph_limit

HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
QUESTION = re.compile(r"^(?:q|question)[ \t]*:[ \t]*", re.IGNORECASE)
PAIR = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?(?:\*\*|__)?(q|question|a|answer)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*(.*)$",
                  re.IGNORECASE)


class _Reader:
    """Takes the file line by line (heading or body) and yields Examples as soon as they are complete."""

    def __init__(self, chunker: Chunker, max_paragraph: int) -> None:
        self.chunker, self.max_paragraph = chunker, max_paragraph
        self.headings: list[tuple[int, str]] = []  # waiting for prose to go with
        self.paragraph: list[str] = []
        self.paragraph_line = self.paragraph_size = 0
        self.asked = 0  # the line of the open question (a question heading's or a Q: line's), 0 if none
        self.question: list[str] = []
        self.answer: list[str] | None = None
        self.whole_section = False  # the open question is a heading: the whole section answers it

    def heading(self, line: int, raw: str) -> Iterator[Example | Problem]:
        yield from self.end_section()
        title = (HEADING.match(raw).group(1) or "").strip()
        if title.endswith("?") or QUESTION.match(title):
            self.asked, self.question, self.answer = line, [QUESTION.sub("", title)], []
            self.whole_section = True
        else:
            self.headings.append((line, raw.strip()))

    def body(self, line: int, text: str, fenced: bool) -> Iterator[Example | Problem]:
        match = None if fenced or self.whole_section else PAIR.match(text)
        tag = match.group(1)[0].lower() if match else ""
        if tag == "q":
            yield from self.end_pair()
            self.asked, self.question, self.answer = line, [match.group(2)], None
        elif tag == "a" and self.asked and self.answer is None:
            self.answer = [match.group(2)]
        elif self.asked:
            (self.question if self.answer is None else self.answer).append(text)
        elif not text.strip():
            yield from self.end_paragraph()
        else:
            if not self.paragraph:
                self.paragraph_line, self.paragraph_size = line, 0
            self.paragraph.append(text.rstrip())
            self.paragraph_size += len(text)
            if self.paragraph_size >= self.max_paragraph:
                yield from self.end_paragraph()

    def end_paragraph(self) -> Iterator[Example]:
        if not self.paragraph:
            return
        for heading in self.headings:
            yield from self.chunker.add(*heading)
        self.headings.clear()
        yield from self.chunker.add(self.paragraph_line, "\n".join(self.paragraph))
        self.paragraph = []

    def end_pair(self) -> Iterator[Example | Problem]:
        yield from self.end_paragraph()
        if not self.asked:
            return
        yield from self.chunker.flush()  # keep file order
        self.headings.clear()
        question, answer = "\n".join(self.question).strip(), "\n".join(self.answer or []).strip()
        if not answer:
            where = "under this question heading" if self.whole_section else "after this question (an 'A:' line)"
            yield Problem(self.asked, f"there is no answer {where}; write the answer or remove the question")
        else:
            yield Example((Message("user", question), Message("assistant", answer)), self.asked)
        self.asked, self.whole_section = 0, False

    def end_section(self) -> Iterator[Example | Problem]:
        yield from self.end_pair()
        yield from self.end_paragraph()


def read_markdown(handle: BinaryIO, chunk_tokens: int,
                  count_tokens: TokenCounter | None = None) -> Iterator[Example | Problem]:
    reader = _Reader(Chunker(chunk_tokens, count_tokens), paragraph_limit(chunk_tokens))
    fenced = False
    for number, text, problem in source.text_lines(handle):
        if problem is not None:
            yield problem
        if FENCE.match(text):
            fenced = not fenced
        if not fenced and HEADING.match(text):
            yield from reader.heading(number, text)
        else:
            yield from reader.body(number, text, fenced)
    yield from reader.end_section()
    yield from reader.chunker.flush()
