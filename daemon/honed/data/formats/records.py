"""One JSON record of each common shape -> Example: chat, prompt/completion, alpaca and sharegpt.

Each function takes a decoded JSON object and the line it starts on, and returns an Example or raises
RecordError with what to change (without the line: the caller knows it and adds it). Structure (role order,
empty turns) is not judged here; `structure_problems` does that for every format alike.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from honed.data.example import ROLES, Example, Message

SHAPES = {
    "chat": '{"messages": [{"role": ..., "content": ...}]}',
    "prompt_completion": '{"prompt": ..., "completion": ...}',
    "alpaca": '{"instruction": ..., "input": ..., "output": ...}',
    "sharegpt": '{"conversations": [{"from": ..., "value": ...}]}',
    "transcript": 'a conversation export ({"mapping": ...} or {"messages": [{"author": ..., "text": ...}]})',
}

SPEAKERS = {
    "user": "user", "human": "user", "customer": "user", "client": "user",
    "assistant": "assistant", "ai": "assistant", "agent": "assistant", "bot": "assistant", "gpt": "assistant",
    "chatgpt": "assistant", "model": "assistant", "support": "assistant",
    "system": "system",
}
"""Speaker names used by sharegpt, transcripts and chat exports, and the role each one is."""


class RecordError(ValueError):
    """What is wrong with one record and how to fix it; the caller adds the line."""


def shape_of(keys: Collection[str], message_keys: Collection[str] = ()) -> str | None:
    """Which format a record with these keys is (None: none we know). `message_keys`: keys of its first
    message, which tell an OpenAI chat record from an exported conversation."""
    if "mapping" in keys:
        return "transcript"
    if "messages" in keys:
        exported = "author" in message_keys or ("text" in message_keys and "content" not in message_keys)
        return "transcript" if exported else "chat"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys:
        return "alpaca"
    if "prompt" in keys or "completion" in keys:
        return "prompt_completion"
    return None


def record_shape(record: dict[str, Any]) -> str | None:
    messages = record.get("messages")
    first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
    return shape_of(record, first)


def content_text(content: object, where: str) -> str:
    """A message's text: a string, or OpenAI's list of parts (the text parts are all a language model trains on)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)
    raise RecordError(f"{where} must be a string (or a list of text parts), got {type(content).__name__}")


def _extras(record: dict[str, Any]) -> dict[str, Any]:
    label, metadata = record.get("label"), record.get("metadata")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        raise RecordError(f"'label' must be a string, got {type(label).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise RecordError(f"'metadata' must be an object, got {type(metadata).__name__}")
    return {"label": None if label is None else str(label), "metadata": metadata}


def _system(record: dict[str, Any]) -> list[Message]:
    system = record.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        raise RecordError(f"'system' must be a string, got {type(system).__name__}")
    return [Message("system", system)]


def chat_example(record: dict[str, Any], line: int) -> Example:
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise RecordError("'messages' must be a non-empty list of {role, content} objects")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise RecordError(f"messages[{index}] must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise RecordError(f"messages[{index}].role is {role!r}; use one of {', '.join(ROLES)}")
        messages.append(Message(role, content_text(message.get("content"), f"messages[{index}].content")))
    return Example(tuple(messages), line, **_extras(record))


def prompt_completion_example(record: dict[str, Any], line: int) -> Example:
    prompt, completion = record.get("prompt"), record.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise RecordError("'prompt' and 'completion' must both be strings")
    messages = [*_system(record), Message("user", prompt), Message("assistant", completion)]
    return Example(tuple(messages), line, **_extras(record))


def alpaca_example(record: dict[str, Any], line: int) -> Example:
    """The instruction (and the input, after a blank line, when there is one) is the user turn."""
    instruction, given, output = record.get("instruction"), record.get("input"), record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        raise RecordError("'instruction' and 'output' must both be strings")
    if given is not None and not isinstance(given, str):
        raise RecordError(f"'input' must be a string when given, got {type(given).__name__}")
    user = f"{instruction}\n\n{given}" if given and given.strip() else instruction
    messages = [*_system(record), Message("user", user), Message("assistant", output)]
    return Example(tuple(messages), line, **_extras(record))


def sharegpt_example(record: dict[str, Any], line: int) -> Example:
    turns = record["conversations"]
    if not isinstance(turns, list) or not turns:
        raise RecordError("'conversations' must be a non-empty list of {from, value} objects")
    messages = _system(record)
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"conversations[{index}] must be an object with 'from' and 'value'")
        speaker = turn.get("from", turn.get("role"))
        role = SPEAKERS.get(speaker.strip().lower()) if isinstance(speaker, str) else None
        if role is None:
            raise RecordError(f"conversations[{index}].from is {speaker!r}; use human, gpt or system")
        value = turn["value"] if "value" in turn else turn.get("content")
        messages.append(Message(role, content_text(value, f"conversations[{index}].value")))
    return Example(tuple(messages), line, **_extras(record))
