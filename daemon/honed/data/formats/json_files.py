"""JSON data files -> records -> Examples: JSONL (streamed line by line), or a JSON document read whole: a
top-level array (alpaca datasets, ChatGPT's conversations.json), one object, or pretty-printed objects one
after another.

In auto mode every record is read by its own keys, so a JSONL file may mix shapes; when the format is given,
a record of another shape is a Problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import PurePath
from typing import Any, BinaryIO

from honed.data.example import Example, Problem
from honed.data.formats import source
from honed.data.formats.exports import export_example
from honed.data.formats.records import (SHAPES, RecordError, alpaca_example, chat_example,
                                        prompt_completion_example, record_shape, sharegpt_example)
from honed.errors import DataError

MAX_JSON_BYTES = 100 * 1024 * 1024
"""A JSON array is read whole; past this, the file must be JSONL, which is streamed."""

READERS: dict[str, Callable[[dict[str, Any], int], Example]] = {
    "chat": chat_example,
    "prompt_completion": prompt_completion_example,
    "alpaca": alpaca_example,
    "sharegpt": sharegpt_example,
    "transcript": export_example,
}

_DECODER = json.JSONDecoder(strict=False)  # raw control characters in strings are for analysis to flag
_SPACE = re.compile(r"\s*")


def record_example(record: object, line: int, expected: str | None = None) -> Example:
    """A decoded JSON value -> Example, read as `expected` or (None) by its own keys; RecordError if it can't be."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    shape = record_shape(record)
    # An OpenAI chat record is also a fine exported conversation.
    if expected is not None and shape != expected and not (expected == "transcript" and shape == "chat"):
        found = f"looks like {shape} ({SHAPES[shape]})" if shape else f"has keys {', '.join(sorted(record))}"
        raise RecordError(f"this record {found}, but the format is set to {expected}; "
                          f"write it as {SHAPES[expected]} or set the format to auto")
    shape = expected or shape
    if shape is None:
        keys = ", ".join(sorted(record)) or "none"
        raise RecordError(f"unknown example format (keys: {keys}); use one of " + ", ".join(SHAPES.values()))
    return READERS[shape](record, line)


def _read(record: object, line: int, expected: str | None) -> Example | Problem:
    try:
        return record_example(record, line, expected)
    except RecordError as exc:
        return Problem(line, str(exc))


def _json_lines(lines: Iterator[tuple[int, str, Problem | None]], expected: str | None) -> Iterator[Example | Problem]:
    for number, text, problem in lines:
        if problem is not None:
            yield problem
            continue
        if not text.strip():
            continue
        try:
            record = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            yield Problem(number, f"invalid JSON ({exc.msg} at column {exc.colno}); "
                                  "each line must be one complete JSON object")
            continue
        yield _read(record, number, expected)


def _values(text: str, expected: str | None) -> Iterator[Example | Problem]:
    """The items of a top-level array, or JSON values one after another; each with the line it starts on."""
    position = _SPACE.match(text).end()
    in_array = text.startswith("[", position)
    position += in_array
    line, counted = 1, 0
    while True:
        position = _SPACE.match(text, position).end()
        if in_array and position == len(text):  # a file cut off mid-upload, or the ']' forgotten
            yield Problem(line + text.count("\n", counted, position), "the file ends inside its JSON array; "
                          "close it with ']' (if the file was cut off, export it again)")
            return
        if position == len(text) or (in_array and text.startswith("]", position)):
            return
        line += text.count("\n", counted, position)
        counted = position
        try:
            record, position = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            yield Problem(exc.lineno, f"invalid JSON ({exc.msg} at column {exc.colno}); "
                                      "the rest of the file cannot be read until it is fixed")
            return
        yield _read(record, line, expected)
        position = _SPACE.match(text, position).end()
        if in_array and text.startswith(",", position):
            position += 1
        elif in_array and not text.startswith("]", position):
            yield Problem(line + text.count("\n", counted, position), "expected ',' or ']' after this record")
            return


def _whole(handle: BinaryIO) -> tuple[str, Problem | None]:
    """The file as one string (capped), and a Problem if some of it is not UTF-8."""
    data = handle.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise DataError(f"this JSON file is over {MAX_JSON_BYTES // 2**20} MB, and a JSON document is read whole; "
                        "convert it to JSONL (one JSON object per line, e.g. `jq -c '.[]' data.json > data.jsonl`), "
                        "which is read line by line")
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem(line, "not valid UTF-8; save the file as UTF-8", kind="encoding")
        return data.decode("utf-8", errors="replace").removeprefix("\ufeff"), problem


def _first_line_is_whole(head: bytes) -> bool:
    """JSONL's first line is a whole JSON value; a pretty-printed document's ("{") is not."""
    first = head.decode("utf-8", errors="replace").removeprefix("\ufeff").lstrip().split("\n", 1)[0]
    try:
        _DECODER.decode(first)
    except json.JSONDecodeError:
        return False
    return True


def read_json(handle: BinaryIO, filename: str, expected: str | None = None) -> Iterator[Example | Problem]:
    """Examples and Problems from a JSON or JSONL file, in file order."""
    head, handle = source.peek(handle)
    start = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    named_jsonl = PurePath(filename).suffix.lower() in (".jsonl", ".ndjson")
    if named_jsonl or start not in (b"[", b"{") or (start == b"{" and _first_line_is_whole(head)):
        yield from _json_lines(source.text_lines(handle), expected)
        return
    text, problem = _whole(handle)
    if problem is not None:
        yield problem
    yield from _values(text, expected)
