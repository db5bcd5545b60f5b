"""Training examples from JSONL: OpenAI chat (`{"messages": [...]}`) and prompt/completion lines.

Both end in one internal type, `Example` (a list of messages). Every problem is reported with its line
number and what to change, because the person fixing it has the file open in an editor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from honed.data.example import ROLES, Example, Message
from honed.errors import DataError

MAX_REPORTED_PROBLEMS = 5


def _content_text(content: object, line: int, index: int) -> str:
    # OpenAI allows content as a list of parts; text parts are all a language model trains on.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)
    raise DataError(
        f"line {line}: messages[{index}].content must be a string (or a list of text parts), "
        f"got {type(content).__name__}"
    )


def parse_record(record: object, line: int) -> Example:
    """One decoded JSON value -> an Example, or DataError naming the line and the fix."""
    if not isinstance(record, dict):
        raise DataError(f"line {line}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        raw = record["messages"]
        if not isinstance(raw, list) or not raw:
            raise DataError(f"line {line}: 'messages' must be a non-empty list of {{role, content}} objects")
        messages = []
        for index, message in enumerate(raw):
            if not isinstance(message, dict):
                raise DataError(f"line {line}: messages[{index}] must be an object with 'role' and 'content'")
            role = message.get("role")
            if role not in ROLES:
                raise DataError(
                    f"line {line}: messages[{index}].role is {role!r}; use one of {', '.join(ROLES)}"
                )
            messages.append(Message(role, _content_text(message.get("content"), line, index)))
    elif "prompt" in record or "completion" in record:
        prompt, completion = record.get("prompt"), record.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DataError(f"line {line}: 'prompt' and 'completion' must both be strings")
        messages = [Message("user", prompt), Message("assistant", completion)]
    else:
        keys = ", ".join(sorted(record)) or "none"
        raise DataError(
            f"line {line}: unknown example format (keys: {keys}); use {{\"messages\": [...]}} "
            f"or {{\"prompt\": ..., \"completion\": ...}}"
        )
    if not any(m.role == "assistant" and m.content.strip() for m in messages):
        raise DataError(f"line {line}: no assistant message with content; there is nothing to learn from it")
    return Example(tuple(messages), line)


def read_examples(lines: Iterable[bytes | str]) -> Iterator[Example]:
    """Parse JSONL lines lazily; blank lines are skipped. Raises DataError on the first bad line."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"line {number}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8") from exc
        text = raw.strip()
        if not text:
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        yield parse_record(record, number)


def validate_file(lines: Iterable[bytes | str]) -> int:
    """Check a whole training file; returns the number of usable examples or raises DataError."""
    count = sum(1 for _ in read_examples(lines))
    if count == 0:
        raise DataError("the file has no examples; each line must be one JSON object with 'messages'")
    return count
