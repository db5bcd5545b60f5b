"""`Client` and `AsyncClient`: honed's API over httpx, returning the wire types from hone.types.

Each resource method describes its request once (a `Call`); the sync client executes it and returns the value,
the async client executes it and returns an awaitable. Streams (chat chunks, job events) are parsed from SSE.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

from hone.suites import load_suite
from hone.types import (
    TERMINAL_STATUSES,
    ChatCompletion,
    ChatCompletionChunk,
    DatasetPreview,
    DatasetReport,
    DatasetSplit,
    Estimate,
    EvalResultList,
    EvalRun,
    EvalSuite,
    ExportJob,
    ExportJobList,
    FileDeleted,
    FileList,
    FileObject,
    FineTuningJob,
    FineTuningJobList,
    Hardware,
    JobCheckpointList,
    JobEvent,
    JobEventList,
    ModelAlias,
    ModelAliasList,
    ModelList,
    Preference,
    PreferenceList,
    PreparedRecipe,
    RecipeList,
    Search,
    SearchList,
    Suggestions,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8421"


class HoneError(Exception):
    """An error answer from honed (OpenAI's error shape), or no answer at all (status 0)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def __str__(self) -> str:
        return self.message


class Call(msgspec.Struct, frozen=True):
    method: str
    path: str
    result: Any = None
    """The wire type to decode the JSON answer into; None returns the decoded JSON, bytes the raw body."""
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        raise HoneError(response.status_code, error["message"], error.get("param"), error.get("code"))
    except (ValueError, KeyError, TypeError):
        raise HoneError(response.status_code, f"HTTP {response.status_code}: {response.text[:200]}") from None


def _decode(call: Call, response: httpx.Response) -> Any:
    _raise_for(response)
    if call.result is bytes:
        return response.content
    if call.result is None:
        return response.json()
    return msgspec.json.decode(response.content, type=call.result)


def _request_args(call: Call) -> dict[str, Any]:
    args: dict[str, Any] = {"params": {k: v for k, v in (call.params or {}).items() if v is not None}}
    if call.json is not None:
        args["content"] = msgspec.json.encode(call.json)
        args["headers"] = {"Content-Type": "application/json"}
    if call.files is not None:
        args["files"], args["data"] = call.files, call.data
    return args


class SSEParser:
    """Feed SSE lines one at a time; a blank line completes an (event type, data) message."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str | None, str] | None:
        if line == "":
            message = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = None, []
            return message
        if line.startswith("data:"):
            self.data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            self.event = line[6:].strip()
        return None


def _sse_data(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    parser = SSEParser()
    for line in lines:
        if (message := parser.feed(line)) is not None:
            yield message


def _omit_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -------------------------------------------------------------------------------------- resources


class Files:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, file: str | Path | bytes, purpose: str = "fine-tune", filename: str | None = None,
               format: str | None = None, columns: dict[str, str] | None = None,
               chunk_tokens: int | None = None) -> Any:
        """Upload a data file. honed detects its format (JSONL/JSON chat, alpaca, sharegpt, CSV/TSV, text,
        Markdown, ChatML, transcripts); `format`, `columns` (CSV) and `chunk_tokens` (text) override it."""
        return self._execute(Call("POST", "/v1/files", FileObject, files=_file_part(file, filename),
                                  data=_format_fields(purpose=purpose, format=format, columns=columns,
                                                      chunk_tokens=chunk_tokens)))

    def preview(self, file_id: str, offset: int = 0, limit: int = 20, q: str | None = None) -> Any:
        """A page of the file's examples as honed reads them (with each record's problems)."""
        return self._execute(Call("GET", f"/v1/files/{file_id}/preview", DatasetPreview,
                                  params={"offset": offset, "limit": limit, "q": q}))

    def list(self, purpose: str | None = None) -> Any:
        return self._execute(Call("GET", "/v1/files", FileList, params={"purpose": purpose}))

    def retrieve(self, file_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/files/{file_id}", FileObject))

    def delete(self, file_id: str) -> Any:
        return self._execute(Call("DELETE", f"/v1/files/{file_id}", FileDeleted))

    def content(self, file_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/files/{file_id}/content", bytes))


def _file_part(file: str | Path | bytes, filename: str | None) -> dict[str, Any]:
    if isinstance(file, (str, Path)):
        return {"file": (filename or Path(file).name, Path(file).read_bytes())}
    return {"file": (filename or "data.jsonl", file)}


def _format_fields(**fields: Any) -> dict[str, str]:
    """Multipart form fields: JSON for structured values, nothing for None."""
    return {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items() if v is not None}


class Datasets:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def analyze(self, file: str | Path, *, validation_file: str | Path | None = None,
                model: str | None = None, max_seq_len: int = 512, format: str | None = None,
                columns: dict[str, str] | None = None) -> Any:
        """The quality report on a stored file (its id) or a local file (sent along, not stored)."""
        local = not (isinstance(file, str) and file.startswith("file-"))
        if local:
            parts = _file_part(file, None)
            if validation_file is not None:
                parts["validation_file"] = _file_part(validation_file, None)["file"]
            return self._execute(Call("POST", "/v1/datasets/analyze", DatasetReport, files=parts, data=_format_fields(
                model=model, max_seq_len=max_seq_len, format=format, columns=columns)))
        body = _omit_none({"file": file, "validation_file": validation_file, "model": model,
                           "max_seq_len": max_seq_len,
                           "format": _omit_none({"format": format, "columns": columns}) if format or columns else None})
        return self._execute(Call("POST", "/v1/datasets/analyze", DatasetReport, json=body))

    def split(self, file: str, *, validation: float = 0.1, test: float = 0.0, seed: int = 0,
              stratify: str = "auto", augment: float = 0.0) -> Any:
        """Stored train/validation/test files from one stored file."""
        return self._execute(Call("POST", "/v1/datasets/split", DatasetSplit, json={
            "file": file, "validation": validation, "test": test, "seed": seed, "stratify": stratify,
            "augment": augment}))


class Jobs:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, *, model: str, training_file: str, validation_file: str | None = None,
               hyperparameters: dict[str, Any] | None = None, suffix: str | None = None, seed: int | None = None,
               honed: dict[str, Any] | None = None, **extra: Any) -> Any:
        body = _omit_none({"model": model, "training_file": training_file, "validation_file": validation_file,
                           "hyperparameters": hyperparameters, "suffix": suffix, "seed": seed, "honed": honed,
                           **extra})
        return self._execute(Call("POST", "/v1/fine_tuning/jobs", FineTuningJob, json=body))

    def estimate(self, **job: Any) -> Any:
        """What `create(**job)` would cost on the daemon's machine (time, peak memory) and the settings honed
        would choose, without creating it. The first estimate of a kind of job measures a few steps."""
        return self._execute(Call("POST", "/v1/estimate", Estimate, json=_omit_none(job)))

    def suggest(self, **job: Any) -> Any:
        """The hyperparameters honed suggests for `create(**job)` (each with its reason) and the settings it would
        choose for the daemon's machine; `.hyperparameters` and `.honed` drop into `create`."""
        return self._execute(Call("POST", "/v1/fine_tuning/suggest", Suggestions, json=_omit_none(job)))

    def list(self, after: str | None = None, limit: int | None = None) -> Any:
        return self._execute(Call("GET", "/v1/fine_tuning/jobs", FineTuningJobList,
                                  params={"after": after, "limit": limit}))

    def retrieve(self, job_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/fine_tuning/jobs/{job_id}", FineTuningJob))

    def cancel(self, job_id: str) -> Any:
        return self._execute(Call("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel", FineTuningJob))

    def pause(self, job_id: str) -> Any:
        return self._execute(Call("POST", f"/v1/fine_tuning/jobs/{job_id}/pause", FineTuningJob))

    def resume(self, job_id: str) -> Any:
        return self._execute(Call("POST", f"/v1/fine_tuning/jobs/{job_id}/resume", FineTuningJob))

    def list_events(self, job_id: str, after: str | None = None, limit: int | None = None) -> Any:
        return self._execute(Call("GET", f"/v1/fine_tuning/jobs/{job_id}/events", JobEventList,
                                  params={"after": after, "limit": limit}))

    def eval_results(self, job_id: str) -> Any:
        """Every metric the job measured: baseline, each validation point, final."""
        return self._execute(Call("GET", f"/v1/fine_tuning/jobs/{job_id}/eval_results", EvalResultList))

    def checkpoints(self, job_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints", JobCheckpointList))

    def report(self, job_id: str, fmt: str = "html") -> Any:
        """The job's self-contained report as bytes: fmt "html", or "pdf" (printed by Chromium on the daemon)."""
        return self._execute(Call("GET", f"/v1/reports/{job_id}.{fmt}", bytes))


class ChatCompletions:
    def __init__(self, execute: Callable[[Call], Any], stream: Callable[[Call], Any]) -> None:
        self._execute, self._stream = execute, stream

    def create(self, *, model: str, messages: list[dict[str, Any]], stream: bool = False, **params: Any) -> Any:
        body = _omit_none({"model": model, "messages": messages, "stream": stream, **params})
        call = Call("POST", "/v1/chat/completions", ChatCompletionChunk if stream else ChatCompletion, json=body)
        return self._stream(call) if stream else self._execute(call)


class Evals:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, *, suite: dict[str, Any] | EvalSuite | str | Path, models: list[str]) -> Any:
        """Run `suite` on one model, or on two to compare them (second minus first). The suite may be a dict,
        an EvalSuite, or the path of a YAML/JSON suite file (its local dataset is read and sent along)."""
        if isinstance(suite, (str, Path)):
            suite = load_suite(suite)
        body = {"suite": msgspec.to_builtins(suite), "models": models}
        return self._execute(Call("POST", "/v1/evals", EvalRun, json=body))

    def retrieve(self, eval_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/evals/{eval_id}", EvalRun))

    def results(self, eval_id: str) -> Any:
        """Every stored metric value of the run, per model."""
        return self._execute(Call("GET", f"/v1/evals/{eval_id}/results", EvalResultList))


class Preferences:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, *, prompt: str, model_a: str, model_b: str, answer_a: str, answer_b: str, winner: str,
               system: str | None = None) -> Any:
        """Store a vote between two answers ("a", "b" or "tie")."""
        return self._execute(Call("POST", "/v1/preferences", Preference, json=_omit_none({
            "prompt": prompt, "model_a": model_a, "model_b": model_b, "answer_a": answer_a, "answer_b": answer_b,
            "winner": winner, "system": system})))

    def list(self) -> Any:
        return self._execute(Call("GET", "/v1/preferences", PreferenceList))

    def export_dpo(self) -> Any:
        """The votes as JSONL bytes of {prompt, chosen, rejected} (ties left out)."""
        return self._execute(Call("GET", "/v1/preferences", bytes, params={"format": "dpo"}))


class Models:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def list(self) -> Any:
        return self._execute(Call("GET", "/v1/models", ModelList))


class Exports:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, *, model: str, format: str = "adapter", quantization: str | None = None,
               name: str | None = None, output_dir: str | None = None) -> Any:
        """Queue an export of a fine-tuned model (or checkpoint, alias, job id) in `format`."""
        return self._execute(Call("POST", "/v1/exports", ExportJob, json=_omit_none(
            {"model": model, "format": format, "quantization": quantization, "name": name,
             "output_dir": output_dir})))

    def retrieve(self, export_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/exports/{export_id}", ExportJob))

    def list(self) -> Any:
        return self._execute(Call("GET", "/v1/exports", ExportJobList))

    def list_events(self, export_id: str, after: str | None = None, limit: int | None = None) -> Any:
        return self._execute(Call("GET", f"/v1/exports/{export_id}/events", JobEventList,
                                  params=_omit_none({"after": after, "limit": limit})))


class Searches:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def create(self, *, job: dict[str, Any], space: dict[str, dict[str, Any]], n_trials: int = 8,
               **options: Any) -> Any:
        """Queue a hyperparameter search: `job` is a fine-tuning job body (what jobs.create takes), `space` the
        hyperparameters to vary ({"learning_rate_multiplier": {"low": 0.5, "high": 8, "log": True}, "lora_rank":
        {"choices": [8, 16, 32]}}); options: trial_max_steps, trial_max_minutes, metric, pruner, seed, enqueue."""
        body = _omit_none({"job": _omit_none(job), "space": space, "n_trials": n_trials, **options})
        return self._execute(Call("POST", "/v1/fine_tuning/searches", Search, json=body))

    def retrieve(self, search_id: str) -> Any:
        return self._execute(Call("GET", f"/v1/fine_tuning/searches/{search_id}", Search))

    def list(self, after: str | None = None, limit: int | None = None) -> Any:
        return self._execute(Call("GET", "/v1/fine_tuning/searches", SearchList,
                                  params={"after": after, "limit": limit}))

    def cancel(self, search_id: str) -> Any:
        """Cancel the search and its unfinished trials."""
        return self._execute(Call("POST", f"/v1/fine_tuning/searches/{search_id}/cancel", Search))

    def list_events(self, search_id: str, after: str | None = None, limit: int | None = None) -> Any:
        return self._execute(Call("GET", f"/v1/fine_tuning/searches/{search_id}/events", JobEventList,
                                  params={"after": after, "limit": limit}))

    def report(self, search_id: str) -> Any:
        """The search's page (HTML bytes): trials, the best one, importances and a plot."""
        return self._execute(Call("GET", f"/v1/fine_tuning/searches/{search_id}/report", bytes))


class Aliases:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def list(self) -> Any:
        return self._execute(Call("GET", "/v1/aliases", ModelAliasList))

    def retrieve(self, name: str) -> Any:
        return self._execute(Call("GET", f"/v1/aliases/{name}", ModelAlias))

    def point(self, name: str, model: str) -> Any:
        """Create the alias or point it at `model` (deploy); the previous model stays in its history."""
        return self._execute(Call("PUT", f"/v1/aliases/{name}", ModelAlias, json={"model": model}))

    def rollback(self, name: str) -> Any:
        return self._execute(Call("POST", f"/v1/aliases/{name}/rollback", ModelAlias))

    def delete(self, name: str) -> Any:
        return self._execute(Call("DELETE", f"/v1/aliases/{name}"))


class Recipes:
    def __init__(self, execute: Callable[[Call], Any]) -> None:
        self._execute = execute

    def list(self) -> Any:
        return self._execute(Call("GET", "/v1/recipes", RecipeList))

    def prepare(self, name: str, *, model: str | None = None, subset: int | None = None) -> Any:
        """Store the recipe's data as files; returns them and the job body that runs the recipe."""
        return self._execute(Call("POST", f"/v1/recipes/{name}/prepare", PreparedRecipe,
                                  json=_omit_none({"model": model, "subset": subset})))


class _Namespace:
    def __init__(self, **members: Any) -> None:
        self.__dict__.update(members)


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("HONED_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("HONED_URL") or DEFAULT_BASE_URL).rstrip("/")


def _attach_resources(client: Any) -> None:
    """The same resource objects on both clients; only how a Call is executed differs."""
    client.files = Files(client._execute)
    client.fine_tuning = _Namespace(jobs=Jobs(client._execute), searches=Searches(client._execute))
    client.fine_tuning.jobs.stream = client._stream_job_events
    client.chat = _Namespace(completions=ChatCompletions(client._execute, client._stream_chunks))
    client.models = Models(client._execute)
    client.evals = Evals(client._execute)
    client.datasets = Datasets(client._execute)
    client.preferences = Preferences(client._execute)
    client.recipes = Recipes(client._execute)
    client.exports = Exports(client._execute)
    client.aliases = Aliases(client._execute)
    client.hardware = functools.partial(client._execute, Call("GET", "/v1/hardware", Hardware))


def _chunk(data: str) -> ChatCompletionChunk | None:
    """One chat SSE message as a chunk; None at the closing [DONE]."""
    if data == "[DONE]":
        return None
    payload = json.loads(data)
    if "error" in payload:
        raise HoneError(500, payload["error"]["message"])
    return msgspec.convert(payload, ChatCompletionChunk)


def _events_call(job_id: str) -> Call:
    return Call("GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"stream": "true"})


def _unreachable(base_url: str, exc: Exception) -> HoneError:
    return HoneError(0, f"cannot reach honed at {base_url} ({exc}); is `honed serve` running?")


# ----------------------------------------------------------------------------------------- clients


class Client:
    """Synchronous client: `Client().fine_tuning.jobs.create(model=..., training_file=...)`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = _base_url(base_url)
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(api_key), timeout=timeout)
        _attach_resources(self)
        self.fine_tuning.jobs.wait = self._wait

    def _execute(self, call: Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **_request_args(call))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from None
        return _decode(call, response)

    @contextmanager
    def _sse(self, call: Call, headers: dict[str, str] | None = None) -> Iterator[Iterator[tuple[str | None, str]]]:
        args = _request_args(call)
        args["headers"] = {**args.get("headers", {}), **(headers or {})}
        with self._http.stream(call.method, call.path, timeout=None, **args) as response:
            if not response.is_success:
                response.read()
                _raise_for(response)
            yield _sse_data(response.iter_lines())

    def _stream_chunks(self, call: Call) -> Iterator[ChatCompletionChunk]:
        with self._sse(call) as messages:
            for _, data in messages:
                if (chunk := _chunk(data)) is None:
                    return
                yield chunk

    def _stream_job_events(self, job_id: str, after_seq: int = 0) -> Iterator[JobEvent]:
        """Live events of a job, oldest first, until it ends (reconnects from the last seen seq)."""
        while True:
            try:
                with self._sse(_events_call(job_id), headers={"Last-Event-ID": str(after_seq)}) as messages:
                    for event_type, data in messages:
                        if event_type == "done":
                            return
                        event = msgspec.json.decode(data, type=JobEvent)
                        after_seq = event.seq
                        yield event
                    return
            except (httpx.RemoteProtocolError, httpx.ReadError):
                time.sleep(0.5)  # the daemon restarted or the connection dropped: pick up where we were

    def _wait(self, job_id: str, poll: float = 1.0, timeout: float | None = None) -> FineTuningJob:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.fine_tuning.jobs.retrieve(job_id)
            if job.status in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            time.sleep(poll)

    def health(self) -> dict[str, Any]:
        return self._execute(Call("GET", "/healthz"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """Asynchronous client with the same resources: `await AsyncClient().files.list()`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = _base_url(base_url)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(api_key), timeout=timeout)
        _attach_resources(self)

    async def _execute(self, call: Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **_request_args(call))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from None
        return _decode(call, response)

    async def _lines(self, call: Call, headers: dict[str, str] | None = None) -> AsyncIterator[tuple[str | None, str]]:
        args = _request_args(call)
        args["headers"] = {**args.get("headers", {}), **(headers or {})}
        async with self._http.stream(call.method, call.path, timeout=None, **args) as response:
            if not response.is_success:
                await response.aread()
                _raise_for(response)
            parser = SSEParser()
            async for line in response.aiter_lines():
                if (message := parser.feed(line)) is not None:
                    yield message

    async def _stream_chunks(self, call: Call) -> AsyncIterator[ChatCompletionChunk]:
        async for _, data in self._lines(call):
            if (chunk := _chunk(data)) is None:
                return
            yield chunk

    async def _stream_job_events(self, job_id: str, after_seq: int = 0) -> AsyncIterator[JobEvent]:
        async for event_type, data in self._lines(_events_call(job_id), headers={"Last-Event-ID": str(after_seq)}):
            if event_type == "done":
                return
            yield msgspec.json.decode(data, type=JobEvent)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
