"""The one internal example type every data format ends in, and the structural checks it must pass.

A chat example is a list of messages (trained on its assistant turns); a text example (continued
pre-training) is raw text trained on every token. Either carries the line in its source file where it starts,
so every finding and error can point a person at it.
"""

from __future__ import annotations

from typing import Any

import msgspec

ROLES = ("system", "user", "assistant")


class Message(msgspec.Struct, frozen=True):
    role: str
    content: str


class Example(msgspec.Struct, frozen=True):
    messages: tuple[Message, ...]
    line: int
    """1-based line of the source file where the example starts."""
    label: str | None = None
    """A class label (intent, category) when the data has one: used for stratified splits and balance."""
    text: str | None = None
    """Raw text for continued pre-training: every token is trained and no chat template is applied."""
    synthetic: bool = False
    """Made by augmentation: kept out of validation and test splits."""
    metadata: dict[str, Any] | None = None


class Problem(msgspec.Struct, frozen=True):
    """A record that could not be read as an example, or an example that cannot train as it is."""

    line: int
    message: str
    kind: str = "format"
    """format (unreadable record), structure (roles, empty turns) or encoding."""


def structure_problems(example: Example) -> list[str]:
    """What is wrong with a chat example's turns, each as a sentence saying what to change (empty: fine).

    Rules: at most one system message, and only first; then user and assistant alternate, starting with the
    user; no empty content; at least one assistant turn with content (else nothing is learned)."""
    if example.text is not None:
        return [] if example.text.strip() else ["the text is empty"]
    found = []
    turns = list(example.messages)
    for index, message in enumerate(turns):
        if message.role not in ROLES:
            found.append(f"messages[{index}] has role {message.role!r}; use one of {', '.join(ROLES)}")
        if not message.content.strip():
            found.append(f"messages[{index}] ({message.role}) is empty")
    if any(m.role == "system" for m in turns[1:]):
        found.append("a system message appears after the first turn; put it first or drop it")
    dialogue = [m.role for m in turns if m.role != "system"]
    if dialogue and dialogue[0] != "user":
        found.append("the conversation starts with the assistant; start it with a user turn")
    for index in range(1, len(dialogue)):
        if dialogue[index] == dialogue[index - 1] and dialogue[index] in ("user", "assistant"):
            found.append(f"two {dialogue[index]} turns in a row; merge them or add the missing turn")
            break
    if not any(m.role == "assistant" and m.content.strip() for m in turns):
        found.append("no assistant turn with content; there is nothing to learn from it")
    return found
