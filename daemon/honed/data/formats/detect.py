"""Which format a data file is in, from its name and its first few KB."""

from __future__ import annotations

import json
import re
from pathlib import PurePath

from honed.data.formats import source
from honed.data.formats.records import SHAPES, record_shape, shape_of
from honed.data.formats.transcript import speaker_sides
from honed.errors import DataError

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
MARKDOWN_SUFFIXES = (".md", ".markdown")

_DECODER = json.JSONDecoder(strict=False)
_KEY = re.compile(r'"([A-Za-z_]+)"\s*:')


def is_json(text: str, filename: str) -> bool:
    """JSON or JSONL by name, or by its first character when the name says nothing."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in JSON_SUFFIXES:
        return True
    known = suffix in TEXT_SUFFIXES or suffix in TABLE_SUFFIXES or suffix in MARKDOWN_SUFFIXES
    return not known and text.lstrip()[:1] in ("[", "{")


def _first_record(text: str) -> object:
    """The first record of a JSONL file or JSON array, or None when the head cuts it off."""
    body = text.lstrip()
    if body.startswith("["):
        body = body[1:].lstrip()
        if body.startswith("]"):
            raise DataError("the file has no examples: its JSON array is empty")
    else:
        try:
            return _DECODER.decode(body.split("\n", 1)[0])
        except json.JSONDecodeError:
            pass  # a pretty-printed object: read it across lines
    try:
        return _DECODER.raw_decode(body)[0]
    except json.JSONDecodeError:
        return None


def _json_format(text: str, filename: str) -> str:
    record = _first_record(text)
    if isinstance(record, dict):
        shape, keys = record_shape(record), sorted(record)
    elif record is None:  # longer than the head: go by the keys in it
        keys = sorted(set(_KEY.findall(text)))
        shape = shape_of(keys, keys)
    else:
        raise DataError(f"{filename}: each record must be a JSON object, but the first is a {type(record).__name__}")
    if shape is None:
        raise DataError(f"cannot tell the format of {filename}: its first record has keys {', '.join(keys) or 'none'}; "
                        "write records as " + ", ".join(SHAPES.values()) + ", or set the format")
    return shape


def detect_format(head: bytes, filename: str) -> str:
    """The format (a DataFormatName other than "auto") of a file, from its name and first bytes (`head`,
    a few KB is plenty). JSON and JSONL go by the first record's keys; other text by its content:
    ChatML markers, then speaker tags (`User:` / `Assistant:`), else plain text.

    DataError when the file is empty, binary, or JSON of a shape no reader knows."""
    text = source.check_text(head)
    suffix = PurePath(filename).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if is_json(text, filename):
        return _json_format(text, filename)
    if "<|im_start|>" in text:
        return "chatml"
    if {"user", "assistant"} <= speaker_sides(text):
        return "transcript"
    return "text"
