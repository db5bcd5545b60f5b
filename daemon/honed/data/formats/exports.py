"""Exported conversations (format "transcript" in JSON) -> Example.

Two shapes: ChatGPT's conversations.json, where each conversation is a tree of nodes in "mapping" (the
conversation shown to the person is the path from the root to "current_node"), and the common
{"messages": [{"author" or "role": ..., "content" or "text": ...}]}.

Exports hold things a model is not trained on, so these are dropped: tool and function turns, hidden
messages, empty messages (ChatGPT's blank system prompt) and non-text parts. What remains is merged into
alternating turns: a run of messages from the same side (an answer split around a tool call) becomes one
turn, its parts separated by a blank line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from honed.data.example import Example, Message
from honed.data.formats.records import SPEAKERS, RecordError

SKIPPED_SPEAKERS = ("tool", "function")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("content_type", "text") not in ("text", "multimodal_text"):
            return ""  # code run by a tool, its output, browsing results
        content = content.get("parts", content.get("text", ""))
        if isinstance(content, str):
            return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, (str, dict))]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _speaker(author: object) -> object:
    if isinstance(author, dict):
        return author.get("role", author.get("name"))
    return author


def _last_leaf(mapping: dict[str, Any]) -> str | None:
    roots = [key for key, node in mapping.items() if isinstance(node, dict) and node.get("parent") not in mapping]
    node_id = roots[0] if roots else None
    seen = set()
    while node_id is not None and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        children = (node.get("children") if isinstance(node, dict) else None) or []
        if not children or children[-1] not in mapping:
            return node_id
        node_id = children[-1]
    return node_id


def _mapping_turns(mapping: object, current: object) -> Iterator[tuple[object, str, str]]:
    if not isinstance(mapping, dict) or not mapping:
        raise RecordError("'mapping' must be an object of message nodes")
    node_id = current if isinstance(current, str) and current in mapping else _last_leaf(mapping)
    path, seen = [], set()
    while isinstance(node_id, str) and node_id in mapping and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            raise RecordError(f"mapping[{node_id!r}] must be an object")
        path.append((node_id, node))
        node_id = node.get("parent")
    for node_id, node in reversed(path):
        message = node.get("message")
        if not isinstance(message, dict):
            continue
        hidden = (message.get("metadata") or {}).get("is_visually_hidden_from_conversation")
        if not hidden:
            yield _speaker(message.get("author")), _text(message.get("content")), f"mapping[{node_id!r}]"


def _message_turns(messages: object) -> Iterator[tuple[object, str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RecordError("'messages' must be a non-empty list of {author, text} objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RecordError(f"messages[{index}] must be an object with 'author' (or 'role') and 'text'")
        speaker = _speaker(message.get("author", message.get("role")))
        yield speaker, _text(message.get("content", message.get("text"))), f"messages[{index}]"


def export_example(record: dict[str, Any], line: int) -> Example:
    """One exported conversation -> a multi-turn Example (its title, if any, in metadata)."""
    if "mapping" in record:
        turns = _mapping_turns(record["mapping"], record.get("current_node"))
    elif "messages" in record:
        turns = _message_turns(record["messages"])
    else:
        raise RecordError("expected a conversation with 'mapping' (a ChatGPT export) or 'messages'")
    messages: list[Message] = []
    for speaker, text, where in turns:
        name = speaker.strip().lower() if isinstance(speaker, str) else speaker
        if name in SKIPPED_SPEAKERS or not text.strip():
            continue
        role = SPEAKERS.get(name) if isinstance(name, str) else None
        if role is None:
            raise RecordError(f"{where} is from {speaker!r}; use user, assistant or system")
        if messages and messages[-1].role == role:
            messages[-1] = Message(role, f"{messages[-1].content}\n\n{text}")
        else:
            messages.append(Message(role, text))
    if not messages:
        raise RecordError("the conversation has no messages with text")
    title = record.get("title")
    return Example(tuple(messages), line, metadata={"title": title} if isinstance(title, str) and title else None)
