"""ChatML (`<|im_start|>role\\ncontent<|im_end|>` blocks) -> one multi-turn Example per conversation.

Conversations are separated by one or more blank lines outside blocks (a blank line inside a block is part
of its content). A conversation with an unclosed block, a stray `<|im_end|>`, text outside blocks or a role
other than system/user/assistant is reported as Problems instead of an Example.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from honed.data.example import ROLES, Example, Message, Problem
from honed.data.formats import source

START, END = "<|im_start|>", "<|im_end|>"
_MARKERS = re.compile(r"(<\|im_start\|>|<\|im_end\|>)")
_ROLE = re.compile(r"[ \t]*([^\s<]*)[ \t]?")


class _Block:
    def __init__(self, line: int) -> None:
        self.line = line
        self.role: str | None = None
        self.parts: list[str] = []


def read_chatml(handle: BinaryIO) -> Iterator[Example | Problem]:
    messages: list[Message] = []
    problems: list[Problem] = []
    block: _Block | None = None
    start = 0
    stray = False

    def close(current: _Block) -> None:
        if not current.role:
            problems.append(Problem(current.line, f"a block has no role; write it right after {START}, "
                                                  "e.g. '<|im_start|>user'"))
        elif current.role not in ROLES:
            problems.append(Problem(current.line, f"a block has role {current.role!r}; use one of {', '.join(ROLES)}"))
        else:
            messages.append(Message(current.role, "".join(current.parts).strip()))

    def finish() -> Iterator[Example | Problem]:
        nonlocal stray
        if problems:
            yield from problems
        elif messages:
            yield Example(tuple(messages), start)
        messages.clear()
        problems.clear()
        stray = False

    for number, text, problem in source.text_lines(handle):
        if problem is not None:
            yield problem
        if block is None and not text.strip():
            yield from finish()
            continue
        for piece in _MARKERS.split(text):
            if piece == START:
                if block is not None:
                    problems.append(Problem(block.line, f"this block has no {END}; close it before the next {START}"))
                    close(block)
                if not messages and not problems:
                    start = number
                block = _Block(number)
            elif piece == END:
                if block is None:
                    problems.append(Problem(number, f"{END} without an {START} before it"))
                else:
                    close(block)
                    block = None
            elif block is not None:
                if block.role is None:
                    match = _ROLE.match(piece)
                    block.role, piece = match.group(1), piece[match.end():]
                block.parts.append(piece)
            elif piece.strip() and not stray:
                stray = True
                problems.append(Problem(number, f"text outside {START} ... {END} blocks; put it inside a block "
                                                "or delete it"))
        if block is not None:
            block.parts.append("\n")
    if block is not None:
        problems.append(Problem(block.line, f"this block has no {END}; the file ends inside it"))
        close(block)
    yield from finish()
