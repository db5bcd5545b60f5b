"""CSV and TSV -> one prompt/response Example per row.

The first non-blank row is the header. Which column holds what comes from the `columns` option, or else
from common header names (any case): see ALIASES. A row's line is the physical line it starts on, so a cell
with quoted line breaks does not shift the lines of the rows after it. Rows are streamed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import BinaryIO

from honed.data.example import Example, Message, Problem
from honed.data.formats import source
from honed.errors import DataError

ALIASES = {
    "prompt": ("prompt", "question", "instruction", "input", "query", "text"),
    "response": ("response", "answer", "output", "completion", "reply"),
    "label": ("label", "category", "intent", "class"),
    "system": ("system", "persona"),
}
"""Each role a column can play, and the header names (in order of preference) that play it."""


def column_map(headers: list[str], columns: dict[str, str] | None = None) -> dict[str, int]:
    """Role -> column index. `columns` (role -> header) overrides the guess from header names; DataError,
    listing the headers, when no column can be found for the prompt or the response."""
    folded = [header.strip().lower() for header in headers]
    found = ", ".join(repr(header) for header in headers)
    mapping: dict[str, int] = {}
    for role, name in (columns or {}).items():
        if role not in ALIASES:
            raise DataError(f"columns has the key {role!r}; use {', '.join(ALIASES)}")
        if name.strip().lower() not in folded:
            raise DataError(f"columns.{role} is {name!r}, but there is no such column (headers found: {found})")
        mapping[role] = headers.index(name) if name in headers else folded.index(name.strip().lower())
    for role, aliases in ALIASES.items():
        free = [alias for alias in aliases if alias in folded and folded.index(alias) not in mapping.values()]
        if role not in mapping and free:
            mapping[role] = folded.index(free[0])
    if "prompt" not in mapping or "response" not in mapping:
        example = {"prompt": headers[0] if headers else "question",
                   "response": headers[1] if len(headers) > 1 else "answer"}
        raise DataError(f"cannot tell which columns hold the prompt and the response (headers found: {found}); "
                        f"set the columns option, e.g. \"columns\": {json.dumps(example)}")
    return mapping


def _row_example(row: list[str], line: int, headers: list[str], mapping: dict[str, int]) -> Example | Problem:
    if len(row) > len(headers) and any(cell.strip() for cell in row[len(headers):]):
        return Problem(line, f"this row has {len(row)} cells but the header has {len(headers)}; "
                             "quote cells that contain the delimiter")
    # Windows line breaks inside quoted cells become plain ones, as everywhere else.
    cells = {role: row[index].strip().replace("\r\n", "\n") if index < len(row) else ""
             for role, index in mapping.items()}
    for role in ("prompt", "response"):
        if not cells[role]:
            return Problem(line, f"the {headers[mapping[role]]!r} cell is empty; fill it in or remove the row")
    system = [Message("system", cells["system"])] if cells.get("system") else []
    messages = (*system, Message("user", cells["prompt"]), Message("assistant", cells["response"]))
    return Example(messages, line, label=cells.get("label") or None)


def _delimiter(head: bytes, name: str) -> str:
    if name == "tsv":
        return "\t"
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return max(",;\t|", key=lambda d: (first.count(d), d == ","))


def read_table(handle: BinaryIO, name: str, columns: dict[str, str] | None = None) -> Iterator[Example | Problem]:
    """`name`: "csv" (delimiter: whichever of , ; tab | the header uses most) or "tsv"."""
    head, handle = source.peek(handle)
    bad: dict[int, Problem] = {}

    def lines() -> Iterator[str]:
        for number, text, problem in source.text_lines(handle, keepends=True):
            if problem is not None:
                bad[number] = problem
            yield text

    reader = csv.reader(lines(), delimiter=_delimiter(head, name))
    headers: list[str] | None = None
    mapping: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if headers is None:
                raise DataError(f"line {start}: the header row cannot be read as {name.upper()} ({exc})") from exc
            bad.clear()
            yield Problem(start, f"this row cannot be read as {name.upper()} ({exc}); check its quotes")
            continue
        problems = [bad.pop(number) for number in sorted(bad) if number <= reader.line_num]
        if problems:
            yield problems[0]
            if headers is not None:
                continue
        if not any(cell.strip() for cell in row):
            continue
        if headers is None:
            headers = [cell.strip() for cell in row]
            mapping = column_map(headers, columns)
            continue
        yield _row_example(row, start, headers, mapping)
