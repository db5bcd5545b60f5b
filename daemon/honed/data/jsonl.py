"""Training examples from JSONL: OpenAI chat (`{"messages": [...]}`) and prompt/completion lines.

Its records are parsed by `honed.data.formats.records`, which also reads every other format.

Both end in one internal type, `Example` (a list of messages). Every problem is reported with its line
number and what to change, because the person fixing it has the file open in an editor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from honed.data.example import Example, Message
from honed.data.formats.records import RecordError, chat_example, prompt_completion_example
from honed.errors import DataError

__all__ = ["Example", "Message", "parse_record", "read_examples", "validate_file"]

MAX_REPORTED_PROBLEMS = 5


def parse_record(record: object, line: int) -> Example:
    """One decoded JSON value -> an Example, or DataError naming the line and the fix."""
    try:
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {type(record).__name__}")
        if "messages" in record:
            example = chat_example(record, line)
        elif "prompt" in record or "completion" in record:
            example = prompt_completion_example(record, line)
        else:
            keys = ", ".join(sorted(record)) or "none"
            raise RecordError(f"unknown example format (keys: {keys}); use {{\"messages\": [...]}} "
                              f"or {{\"prompt\": ..., \"completion\": ...}}")
    except RecordError as exc:
        raise DataError(f"line {line}: {exc}") from exc
    if not any(m.role == "assistant" and m.content.strip() for m in example.messages):
        raise DataError(f"line {line}: no assistant message with content; there is nothing to learn from it")
    return example


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
