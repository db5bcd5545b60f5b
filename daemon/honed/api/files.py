"""/v1/files: training data in, validated at upload and stored by content hash."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException

from hone.suites import SuiteFileError, parse_cases
from hone.types import DataFormat, FileDeleted, FileList, FileObject
from honed.api.common import new_id, services
from honed.config import UPLOAD_TEMP_PREFIX
from honed.data.files import format_record
from honed.errors import Conflict, DataError, InvalidRequest, PayloadTooLarge
from honed.jobs.store import FileRow

PURPOSES = ("fine-tune", "evals")  # training/validation examples; eval suite cases
CHUNK = 1024 * 1024
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(sent: str | None) -> str:
    """The name to keep for an upload: only the last component of whatever path the client sent (either
    separator), without control characters (a NUL or a line break would break the Content-Disposition header
    the file is served with later). Never a path; "upload" when nothing usable is left."""
    name = _UNPRINTABLE.sub("", sent or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else "upload"


def content_disposition(filename: str) -> str:
    """An attachment header for any stored name: an ASCII fallback and the exact name (RFC 6266 filename*)."""
    name = safe_filename(filename)
    fallback = name.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def upload_form(request: Request) -> Any:
    """The request's multipart form; InvalidRequest saying how to send one when the body is not one."""
    try:
        return await request.form()
    except ClientException as exc:
        if exc.status_code != 400:
            raise  # 413: over the upload limit, said as such in app.py
        raise InvalidRequest(f"the body is not a valid multipart form ({exc.detail}); send the data as a multipart "
                             "form field named 'file', e.g. curl -F purpose=fine-tune -F file=@train.jsonl",
                             param="file") from None


def file_object(row: FileRow) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=row.created_at, filename=row.filename,
                      purpose=row.purpose, format=(row.format or {}).get("detected"), examples=row.examples)


async def spool(upload: UploadFile, directory: Path, limit: int) -> tuple[Path, str, int]:
    """Copy an upload to a temp file beside the store, hashing as it goes; refuse past `limit` bytes."""
    digest, size = hashlib.sha256(), 0
    fd, temp_name = tempfile.mkstemp(prefix=UPLOAD_TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the file is larger than the upload limit of {limit:,} bytes "
                                          "(HONED_MAX_UPLOAD_BYTES)", param="file")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(temp_name)
        raise
    return Path(temp_name), digest.hexdigest(), size


def _check_upload(path: Path, filename: str, purpose: str, options: DataFormat) -> tuple[dict | None, int]:
    """The upload's format record and how many examples (or eval cases) it holds; InvalidRequest naming the
    bad line otherwise."""
    if purpose == "evals":
        try:
            return None, len(parse_cases(path.read_bytes(), "the file"))
        except SuiteFileError as exc:
            raise InvalidRequest(str(exc), param="file") from None
    try:
        return format_record(path, filename, options)
    except DataError as exc:
        raise DataError(exc.message, param="file") from None


def format_options(form: Any) -> DataFormat:
    """DataFormat from the optional multipart fields `format`, `columns` (a JSON object) and `chunk_tokens`."""
    fields: dict[str, Any] = {}
    if form.get("format"):
        fields["format"] = form.get("format")
    if form.get("columns"):
        try:
            fields["columns"] = json.loads(form.get("columns"))
        except json.JSONDecodeError:
            raise InvalidRequest('columns must be a JSON object like {"prompt": "question", "response": "answer"}',
                                 param="columns") from None
    if form.get("chunk_tokens"):
        fields["chunk_tokens"] = form.get("chunk_tokens")
    try:
        options = msgspec.convert(fields, DataFormat, strict=False)
    except msgspec.ValidationError as exc:
        detail, _, where = str(exc).partition(" - at `$.")
        param = where.rstrip("`").split(".", 1)[0].split("[", 1)[0] or "format"  # the form field at fault
        raise InvalidRequest(f"{param}: {detail}", param=param) from None
    if not 16 <= options.chunk_tokens <= 32768:
        raise InvalidRequest("chunk_tokens must be between 16 and 32768", param="chunk_tokens")
    return options


def store_file(svc: Any, temp: Path, sha256: str, size: int, filename: str, purpose: str,
               options: DataFormat) -> FileRow:
    """Check a spooled upload and keep it: the blob is named by its hash (so it appears whole or not at all)
    and the row is written last. The temp file is gone afterwards, whatever happens."""
    try:
        data_format, examples = _check_upload(temp, filename, purpose, options)
        blob = svc.settings.files_dir / sha256
        if blob.exists():
            temp.unlink()
        else:
            os.replace(temp, blob)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    row = FileRow(id=new_id("file"), filename=filename, purpose=purpose, bytes=size, sha256=sha256,
                  path=str(blob.relative_to(svc.settings.home)), created_at=int(time.time()),
                  examples=examples, format=data_format)
    svc.store.add_file(row)
    return row


def spool_bytes(directory: Path, data: bytes) -> tuple[Path, str, int]:
    """Bytes made here (e.g. a split) as a temp file beside the store, like an upload."""
    fd, name = tempfile.mkstemp(prefix=UPLOAD_TEMP_PREFIX, dir=directory)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(name), hashlib.sha256(data).hexdigest(), len(data)


class FilesController(Controller):
    path = "/v1/files"

    @post("/", status_code=200)
    async def upload(self, request: Request) -> FileObject:
        svc = services(request)
        form = await upload_form(request)
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose not in PURPOSES:
            raise InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}", param="purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("send the data as a multipart form field named 'file'", param="file")
        options = format_options(form)
        filename = safe_filename(upload.filename)
        temp, sha256, size = await spool(upload, svc.settings.files_dir, svc.settings.max_upload_bytes)
        return file_object(await anyio.to_thread.run_sync(
            store_file, svc, temp, sha256, size, filename, purpose, options))

    @get("/")
    async def list_files(self, request: Request, purpose: str | None = None) -> FileList:
        rows = services(request).store.list_files(purpose)
        data = [file_object(r) for r in rows]
        return FileList(data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None)

    @get("/{file_id:str}")
    async def retrieve(self, request: Request, file_id: str) -> FileObject:
        return file_object(services(request).store.get_file(file_id))

    @delete("/{file_id:str}", status_code=200)
    async def remove(self, request: Request, file_id: str) -> FileDeleted:
        svc = services(request)
        svc.store.get_file(file_id)
        users = svc.store.jobs_using_file(file_id, {"validating_files", "queued", "running", "paused"})
        if users:
            raise Conflict(f"file {file_id} is used by unfinished job(s) {', '.join(users)}; cancel them or wait "
                           "until they finish", param="file_id")
        row, orphaned = svc.store.delete_file(file_id)
        if orphaned:
            (svc.settings.home / row.path).unlink(missing_ok=True)
        return FileDeleted(id=file_id)

    @get("/{file_id:str}/content")
    async def content(self, request: Request, file_id: str) -> Response[bytes]:
        svc = services(request)
        row = svc.store.get_file(file_id)
        data = (svc.settings.home / row.path).read_bytes()
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": content_disposition(row.filename)})
