"""Every common fine-tuning data format -> honed's one `Example` type.

Which module reads what:
- json_files (records, exports): JSONL and JSON: OpenAI chat, prompt/completion, alpaca, sharegpt, and
  exported conversations (ChatGPT's conversations.json), record by record;
- tabular: CSV and TSV with a header row;
- text: plain text for continued pre-training, in chunks of `chunk_tokens`;
- markdown: question/answer sections as chat, the rest as text;
- chatml: `<|im_start|>` ... `<|im_end|>` conversations;
- transcript: `User:` / `Assistant:` transcripts.

Reading is lenient and streamed (`read_records`: Examples and Problems, for analysis) or strict
(`read_examples_strict`: the training path, DataError at the first thing that is wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from hone.types import DataFormat
from honed.data.example import Example, Problem, structure_problems
from honed.data.formats import source
from honed.data.formats.chatml import read_chatml
from honed.data.formats.detect import detect_format, is_json
from honed.data.formats.json_files import read_json
from honed.data.formats.markdown import read_markdown
from honed.data.formats.tabular import read_table
from honed.data.formats.text import read_text
from honed.data.formats.transcript import read_transcript
from honed.errors import DataError

__all__ = ["detect_format", "read_records", "read_examples_strict", "count_records"]

JSON_FORMATS = ("chat", "prompt_completion", "alpaca", "sharegpt")


def read_records(handle: BinaryIO, filename: str, options: DataFormat | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> Iterator[Example | Problem]:
    """Each record of a data file as an Example, or as a Problem (1-based line, what to fix) when it cannot
    be read; reading goes on after a Problem. A line that is not UTF-8 is a Problem of kind "encoding" (in the
    text formats its text still goes on, with U+FFFD for the bad bytes). Streamed: memory stays bounded by
    the longest record, except that a .json document (not JSONL) is read whole, up to 100 MB.

    `options.format` "auto" detects the format from `filename` and the content, and reads JSON record by
    record by its own keys (a JSONL file may mix shapes); a named format makes records of another shape
    Problems. `count_tokens` sizes text chunks (else about 4 characters a token).

    DataError, before the first record, when the file is empty or binary, a .json document is over 100 MB,
    or a CSV's header cannot be read or mapped to prompt and response columns."""
    options = options or DataFormat()
    head, handle = source.peek(handle)
    text = source.check_text(head)
    name = options.format
    if name == "auto":
        name = "json" if is_json(text, filename) else detect_format(head, filename)
    if name in JSON_FORMATS or name == "json" or (name == "transcript" and text.lstrip()[:1] in ("[", "{")):
        yield from read_json(handle, filename, None if name == "json" else name)
    elif name in ("csv", "tsv"):
        yield from read_table(handle, name, options.columns)
    elif name == "text":
        yield from read_text(handle, options.chunk_tokens, count_tokens)
    elif name == "markdown":
        yield from read_markdown(handle, options.chunk_tokens, count_tokens)
    elif name == "chatml":
        yield from read_chatml(handle)
    elif name == "transcript":
        yield from read_transcript(handle)
    else:
        raise DataError(f"unknown data format {name!r}")


def read_examples_strict(handle: BinaryIO, filename: str, options: DataFormat | None = None,
                         count_tokens: Callable[[str], int] | None = None) -> Iterator[Example]:
    """The training path: the Examples of `read_records`, but DataError ("line N: what to fix") at the first
    Problem or the first example whose turns cannot train (see `structure_problems`)."""
    for record in read_records(handle, filename, options, count_tokens):
        if isinstance(record, Problem):
            raise DataError(f"line {record.line}: {record.message}")
        problems = structure_problems(record)
        if problems:
            raise DataError(f"line {record.line}: {'; '.join(problems)}")
        yield record


def count_records(handle: BinaryIO, filename: str, options: DataFormat | None = None) -> int:
    """How many examples an upload holds, checked strictly; DataError when any is wrong or there are none."""
    count = sum(1 for _ in read_examples_strict(handle, filename, options))
    if count == 0:
        raise DataError("the file has no examples")
    return count
