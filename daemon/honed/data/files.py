"""Stored data files -> examples: how an uploaded file is read, for training, analysis and preview.

The format a file was uploaded with (or detected as) is kept on its row, so a CSV's column mapping or a text
file's chunk size is decided once, at upload, and every later reader sees the same examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from hone.types import DataFormat
from honed.data.example import Example, Problem
from honed.data.formats import count_records, detect_format, read_examples_strict, read_records
from honed.data.formats.source import HEAD_BYTES
from honed.jobs.store import FileRow

FORMAT_FIELDS = frozenset(DataFormat.__struct_fields__)


def stored_format(row: FileRow) -> DataFormat:
    """The options a stored file is read with (files from before formats existed are OpenAI chat JSONL)."""
    if not row.format:
        return DataFormat()
    return msgspec.convert({k: v for k, v in row.format.items() if k in FORMAT_FIELDS}, DataFormat)


def format_record(path: Path, filename: str, options: DataFormat) -> tuple[dict[str, Any], int]:
    """What an upload's row keeps about its format (the options plus the detected format's name) and how
    many examples it holds. Raises DataError naming the line for a file that cannot train."""
    with open(path, "rb") as handle:
        detected = options.format if options.format != "auto" else detect_format(handle.read(HEAD_BYTES), filename)
    with open(path, "rb") as handle:
        count = count_records(handle, filename, options)
    return {**msgspec.to_builtins(options), "detected": detected}, count


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def path_records(path: Path, filename: str, options: DataFormat, tokenizer: Any = None) -> Iterator[Example | Problem]:
    """Every record of a data file read as `options` say, leniently: Examples, and Problems for what cannot
    be read. `filename` is the name the user gave it (its extension helps detect the format)."""
    counter = token_counter(tokenizer) if tokenizer is not None else None
    with open(path, "rb") as handle:
        yield from read_records(handle, filename, options, counter)


def file_records(home: Path, row: FileRow, tokenizer: Any = None,
                 options: DataFormat | None = None) -> Iterator[Example | Problem]:
    """Every record of a stored file, as stored (or as `options` override)."""
    return path_records(home / row.path, row.filename, options or stored_format(row), tokenizer)


def training_examples(home: Path, row: FileRow, tokenizer: Any = None,
                      max_seq_len: int | None = None) -> Iterator[Example]:
    """The examples of a stored file for training: DataError at the first that cannot train. Text for
    continued pre-training is chunked to fit max_seq_len (with room for the end-of-text token)."""
    counter = token_counter(tokenizer) if tokenizer is not None else None
    options = stored_format(row)
    if max_seq_len is not None:
        options = msgspec.structs.replace(options, chunk_tokens=max(1, min(options.chunk_tokens, max_seq_len - 1)))
    with open(home / row.path, "rb") as handle:
        yield from read_examples_strict(handle, row.filename, options, counter)
