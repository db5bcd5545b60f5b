"""Evaluation suites as files: YAML or JSON, with cases inline or in a JSONL dataset beside them.

Both sides use this: `hone` reads a local suite file (and its local dataset) into an `EvalSuite` before
sending it; the daemon reads the cases of an uploaded dataset file with `parse_cases`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from hone.types import EvalCase, EvalSuite, StyleModel


class SuiteFileError(ValueError):
    """A suite or dataset file that cannot be read; the message names the file and line to fix."""


def case_from_record(record: Any) -> EvalCase:
    """One eval case from a JSON object: an EvalCase's own fields, or a training example (chat `messages`
    ending in the assistant's answer, or prompt/completion), whose answer becomes the reference."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    record = dict(record)
    if "completion" in record:
        record.setdefault("reference", record.pop("completion"))
    messages = record.get("messages")
    if (isinstance(messages, list) and messages and isinstance(messages[-1], dict)
            and messages[-1].get("role") == "assistant" and record.get("reference") is None):
        record["reference"] = messages[-1].get("content")
        record["messages"] = messages[:-1]
    return msgspec.convert(record, EvalCase)


def parse_cases(data: bytes, source: str) -> list[EvalCase]:
    """Cases from JSONL bytes, one per non-blank line; SuiteFileError names `source` and the bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteFileError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(case_from_record(json.loads(line)))
        except (ValueError, msgspec.ValidationError) as exc:
            raise SuiteFileError(f"{source} line {number}: not an eval case ({exc})") from None
    if not cases:
        raise SuiteFileError(f"{source}: no cases in it")
    return cases


def load_suite(path: str | Path) -> EvalSuite:
    """Read a suite from a .yaml/.yml/.json file. A `dataset` that names a local JSONL file (relative to the
    suite file) is read into the suite's cases; a `file-...` id is left for the daemon to resolve. A
    `style_model` path (relative to the suite file) is read into the classifier's weights."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteFileError(f"{path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            suite = msgspec.yaml.decode(raw, type=EvalSuite)
        else:
            suite = msgspec.json.decode(raw, type=EvalSuite)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SuiteFileError(f"{path}: not a valid eval suite ({exc})") from None
    if suite.dataset and not suite.dataset.startswith("file-"):
        dataset = (path.parent / suite.dataset).resolve()
        try:
            data = dataset.read_bytes()
        except OSError as exc:
            raise SuiteFileError(f"{path}: dataset {dataset}: {exc.strerror}") from None
        suite = msgspec.structs.replace(suite, cases=suite.cases + parse_cases(data, str(dataset)), dataset=None)
    if isinstance(suite.style_model, str):
        suite = msgspec.structs.replace(suite, style_model=load_style_model(path.parent / suite.style_model, path))
    return suite


def load_style_model(path: Path, suite_path: Path) -> StyleModel:
    """A style classifier's weights from its JSON file; SuiteFileError names both files when it cannot be read."""
    path = path.resolve()
    try:
        return msgspec.json.decode(path.read_bytes(), type=StyleModel)
    except OSError as exc:
        raise SuiteFileError(f"{suite_path}: style_model {path}: {exc.strerror}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SuiteFileError(f"{suite_path}: style_model {path} is not a style classifier ({exc})") from None
