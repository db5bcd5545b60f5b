"""/v1/datasets: check data before training (the quality report), split it, and page through it.

Analysis reads a stored file by id, or a file sent along in the request (multipart) that is looked at and
thrown away: a file with problems cannot be stored for training, and those are the files worth checking.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import anyio
from litestar import Request, get, post
from litestar.datastructures import UploadFile

from hone.types import (
    DataFormat,
    DatasetAnalyzeRequest,
    DatasetPreview,
    DatasetReport,
    DatasetSplit,
    DatasetSplitRequest,
    PreviewExample,
)
from honed.api.common import decode_body, limit_param, services
from honed.api.files import (file_object, format_options, safe_filename, spool, spool_bytes, store_file,
                             upload_form)
from honed.data.analysis import analyze
from honed.data.example import Example, Problem, structure_problems
from honed.data.files import file_records, path_records
from honed.data.formats.source import HEAD_BYTES, check_text
from honed.errors import InvalidRequest, NotFound
from honed.jobs.store import FileRow
from honed.models.catalog import DEFAULT_BASE_MODEL
from honed.models.trust import tokenizer_load_options

_tokenizers: dict[str, Any] = {}
_tokenizers_lock = threading.Lock()


def tokenizer_for(svc: Any, model: str) -> Any:
    """The tokenizer (and chat template) of a base model, loaded once per daemon."""
    source = svc.catalog.resolve(model)
    with _tokenizers_lock:
        if source.name not in _tokenizers:
            from transformers import AutoTokenizer

            _tokenizers[source.name] = AutoTokenizer.from_pretrained(svc.catalog.local_dir(model),
                                                                       **tokenizer_load_options())
        return _tokenizers[source.name]


def _check_length(max_seq_len: int) -> None:
    if not 16 <= max_seq_len <= 32768:
        raise InvalidRequest("max_seq_len must be between 16 and 32768", param="max_seq_len")


def _stored_file(svc: Any, file_id: str, param: str) -> FileRow:
    try:
        return svc.store.get_file(file_id)
    except NotFound:
        raise NotFound(f"{param} '{file_id}' does not exist; upload it with POST /v1/files first",
                       param=param) from None


def _stored_records(svc: Any, file_id: str, options: DataFormat | None, tokenizer: Any, param: str):
    return file_records(svc.settings.home, _stored_file(svc, file_id, param), tokenizer, options)


def _analyze_stored(svc: Any, body: DatasetAnalyzeRequest) -> DatasetReport:
    tokenizer = tokenizer_for(svc, body.model)
    train = _stored_records(svc, body.file, body.format, tokenizer, "file")
    valid = (_stored_records(svc, body.validation_file, body.validation_format, tokenizer, "validation_file")
             if body.validation_file else None)
    return analyze(train, tokenizer=tokenizer, max_seq_len=body.max_seq_len, validation=valid)


async def _analyze_upload(svc: Any, form: Any) -> DatasetReport:
    """A report on files sent in the request: spooled beside the store, analysed, deleted."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("send the data as a multipart form field named 'file' (or JSON with a file id)",
                             param="file")
    options = format_options(form)
    model = form.get("model") or DEFAULT_BASE_MODEL
    svc.catalog.resolve(model)
    try:
        max_seq_len = int(form.get("max_seq_len") or 512)
    except ValueError:
        raise InvalidRequest("max_seq_len must be an integer", param="max_seq_len") from None
    _check_length(max_seq_len)
    spooled = []
    try:
        for field in ("file", "validation_file"):
            part = form.get(field)
            if isinstance(part, UploadFile):
                path, _, _ = await spool(part, svc.settings.files_dir, svc.settings.max_upload_bytes)
                spooled.append((path, safe_filename(part.filename)))

        def run() -> DatasetReport:
            for path, _ in spooled:  # an empty or binary file is refused before the tokenizer loads
                with open(path, "rb") as handle:
                    check_text(handle.read(HEAD_BYTES))
            tokenizer = tokenizer_for(svc, model)
            train = path_records(spooled[0][0], spooled[0][1], options, tokenizer)
            valid = path_records(spooled[1][0], spooled[1][1], DataFormat(), tokenizer) if len(spooled) > 1 else None
            return analyze(train, tokenizer=tokenizer, max_seq_len=max_seq_len, validation=valid)

        return await anyio.to_thread.run_sync(run)
    finally:
        for path, _ in spooled:
            path.unlink(missing_ok=True)


@post("/v1/datasets/analyze", status_code=200)
async def analyze_dataset(request: Request) -> DatasetReport:
    """The quality report: counts, token lengths, findings with line numbers, and recommendations."""
    svc = services(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _analyze_upload(svc, await upload_form(request))
    body = decode_body(await request.body(), DatasetAnalyzeRequest)
    _check_length(body.max_seq_len)
    svc.catalog.resolve(body.model)
    # what the request names must exist before the tokenizer loads (the first load of a model takes a while)
    _stored_file(svc, body.file, "file")
    if body.validation_file:
        _stored_file(svc, body.validation_file, "validation_file")
    return await anyio.to_thread.run_sync(_analyze_stored, svc, body)


def _split(svc: Any, body: DatasetSplitRequest) -> DatasetSplit:
    from honed.data.augment import augment
    from honed.data.split import split_examples, write_jsonl

    row = svc.store.get_file(body.file)
    examples = [r for r in file_records(svc.settings.home, row) if isinstance(r, Example)]
    try:
        result = split_examples(examples, validation=body.validation, test=body.test, seed=body.seed,
                                stratify=body.stratify)
        synthetic = augment(result.train, factor=body.augment, seed=body.seed) if body.augment else []
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None

    def keep(part: list[Example], name: str) -> Any:
        if not part:
            return None
        text = io.StringIO()
        write_jsonl(part, text)
        temp, sha256, size = spool_bytes(svc.settings.files_dir, text.getvalue().encode())
        stem = Path(row.filename).stem
        return file_object(store_file(svc, temp, sha256, size, f"{stem}.{name}.jsonl", "fine-tune", DataFormat()))

    return DatasetSplit(train=keep(result.train + synthetic, "train"), validation=keep(result.validation, "validation"),
                        test=keep(result.test, "test"), strata=result.strata, synthetic=len(synthetic))


@post("/v1/datasets/split", status_code=200)
async def split_dataset(request: Request) -> DatasetSplit:
    """Train/validation/test files from one stored file: stratified, seeded, augmented on request."""
    svc = services(request)
    body = decode_body(await request.body(), DatasetSplitRequest)
    if not 0 <= body.augment <= 10:
        raise InvalidRequest("augment must be between 0 and 10 variants per example", param="augment")
    _stored_file(svc, body.file, "file")
    return await anyio.to_thread.run_sync(_split, svc, body)


def _preview_record(record: Example | Problem) -> PreviewExample:
    if isinstance(record, Problem):
        return PreviewExample(line=record.line, problems=[record.message])
    return PreviewExample(line=record.line, text=record.text, label=record.label,
                          messages=[{"role": m.role, "content": m.content} for m in record.messages] or None,
                          problems=structure_problems(record))


def _matches(record: Example | Problem, needle: str) -> bool:
    if isinstance(record, Problem):
        return needle in record.message.lower()
    haystack = [record.text or "", record.label or "", *(m.content for m in record.messages)]
    return any(needle in part.lower() for part in haystack)


@get("/v1/files/{file_id:str}/preview")
async def preview_file(request: Request, file_id: str, offset: str | None = None, limit: str | None = None,
                       q: str | None = None) -> DatasetPreview:
    """A page of a stored file's examples as honed reads them, optionally only those containing `q`."""
    svc = services(request)
    row = svc.store.get_file(file_id)
    count = limit_param(limit, default=20, maximum=200)
    try:
        start = int(offset or 0)
    except ValueError:
        raise InvalidRequest("offset must be a non-negative integer", param="offset") from None
    if start < 0:
        raise InvalidRequest("offset must be a non-negative integer", param="offset")
    needle = (q or "").lower()

    def page() -> DatasetPreview:
        found: list[PreviewExample] = []
        matched = 0
        for record in file_records(svc.settings.home, row):
            if needle and not _matches(record, needle):
                continue
            matched += 1
            if matched <= start:
                continue
            if len(found) == count:
                return DatasetPreview(data=found, offset=start, has_more=True)
            found.append(_preview_record(record))
        return DatasetPreview(data=found, offset=start, has_more=False)

    return await anyio.to_thread.run_sync(page)


ROUTES = [analyze_dataset, split_dataset, preview_file]
