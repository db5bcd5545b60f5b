"""Conversation transcripts as plain text -> one multi-turn Example per conversation.

Each turn starts with a speaker tag at the start of a line (`User:`, `Assistant:`, `Human:`, `AI:`,
`Customer:`, `Agent:`, `System:`..., any case); the lines after it, up to the next tag, continue that turn (a
single blank line stays inside the turn as a paragraph break). A line of `---` (or `===`, `***`) or two or
more blank lines end the conversation. Text before a conversation's first tag is a Problem: it belongs to
no turn. Exported JSON conversations are read by `exports`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from honed.data.example import Example, Message, Problem
from honed.data.formats import source
from honed.data.formats.records import SPEAKERS

TAG = re.compile(r"^[ \t]*(?:\*\*)?(" + "|".join(SPEAKERS) + r")(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]?(.*)$", re.IGNORECASE)
RULE = re.compile(r"^[ \t]*(?:-{3,}|={3,}|\*{3,})[ \t]*$")


def speaker_sides(text: str, max_lines: int = 400) -> set[str]:
    """The roles whose speaker tags start lines in `text` (detection looks for both user and assistant)."""
    sides = set()
    for line in text.splitlines()[:max_lines]:
        match = TAG.match(line)
        if match:
            sides.add(SPEAKERS[match.group(1).lower()])
    return sides


def read_transcript(handle: BinaryIO) -> Iterator[Example | Problem]:
    turns: list[tuple[str, list[str]]] = []
    start = blanks = 0
    stray = False

    def finish() -> Iterator[Example]:
        nonlocal stray
        if turns:
            yield Example(tuple(Message(role, "\n".join(lines).strip()) for role, lines in turns), start)
        turns.clear()
        stray = False

    for number, text, problem in source.text_lines(handle):
        if problem is not None:
            yield problem
        if RULE.match(text):
            yield from finish()
            blanks = 0
            continue
        if not text.strip():
            blanks += 1
            if blanks == 2:
                yield from finish()
            continue
        match = TAG.match(text)
        if match:
            if not turns:
                start = number
            turns.append((SPEAKERS[match.group(1).lower()], [match.group(2)]))
        elif turns:
            turns[-1][1].extend([""] * min(blanks, 1) + [text.rstrip()])
        elif not stray:
            stray = True
            yield Problem(number, "this text comes before any speaker tag; start each turn with a speaker "
                                  "such as 'User:' or 'Assistant:', or delete it")
        blanks = 0
    yield from finish()
