"""/v1/chat/completions: OpenAI's chat endpoint over base and fine-tuned models, streaming or not.

Generation runs in a thread (the event loop keeps answering /healthz and SSE while a model thinks); a streaming
response gets its pieces through an asyncio queue and tells the thread to stop if the client goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from hone.types import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionCreate,
    ChunkChoice,
    ChunkDelta,
    Usage,
)
from honed.api.common import decode_body, new_id, services
from honed.data.tokenize import prompt_ids
from honed.engines import get_engine
from honed.engines.base import GenerationParams
from honed.errors import InvalidRequest
from honed.serving.completion import Completion, TextPiece, decode_stream, stop_token_ids

DEFAULT_MAX_TOKENS = 512
ROLES = ("system", "user", "assistant", "developer", "tool")


def _messages(body: ChatCompletionCreate) -> list[dict[str, str]]:
    if not body.messages:
        raise InvalidRequest("messages must contain at least one message", param="messages")
    out = []
    for index, message in enumerate(body.messages):
        if message.role not in ROLES:
            raise InvalidRequest(f"messages[{index}].role must be one of {', '.join(ROLES)}",
                                 param=f"messages[{index}].role")
        content = message.content
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": content or ""})
    return out


def _params(body: ChatCompletionCreate) -> tuple[GenerationParams, list[str], int]:
    max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
    if max_tokens < 1:
        raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
    temperature = 1.0 if body.temperature is None else body.temperature
    if not 0 <= temperature <= 2:
        raise InvalidRequest("temperature must be between 0 and 2", param="temperature")
    top_p = 1.0 if body.top_p is None else body.top_p
    if not 0 < top_p <= 1:
        raise InvalidRequest("top_p must be in (0, 1]", param="top_p")
    n = body.n or 1
    if not 1 <= n <= 8:
        raise InvalidRequest("n must be between 1 and 8", param="n")
    top_logprobs = body.top_logprobs or 0
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20", param="top_logprobs")
    if top_logprobs and not body.logprobs:
        raise InvalidRequest("top_logprobs requires logprobs=true", param="top_logprobs")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > 4:
        raise InvalidRequest("stop may hold at most 4 sequences", param="stop")
    params = GenerationParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=body.seed,
                              top_logprobs=top_logprobs)
    return params, [s for s in stops if s], n


def _logprobs(piece: TextPiece, tokenizer: Any) -> list[dict[str, Any]]:
    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return [
        {**entry(t.id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in (t.top or [])]}
        for t in piece.tokens
    ]


def _generate(request: Request, body: ChatCompletionCreate, choice_seed: int | None,
              stop_flag: threading.Event) -> Iterator[tuple[TextPiece | None, Completion, int, Any]]:
    """Runs in a worker thread: yields (piece, state, prompt_tokens, tokenizer); a final (None, ...) at the end."""
    registry = services(request).registry
    params, stops, _ = _params(body)
    params = msgspec.structs.replace(params, seed=choice_seed)
    with registry.use(body.model) as (model, tokenizer, _served):
        ids = prompt_ids(tokenizer, _messages(body))
        state = Completion()
        tokens = get_engine("torch").generate(model, ids, params, stop_token_ids(tokenizer, model))

        def until_stopped():
            for token in tokens:
                if stop_flag.is_set():
                    return
                yield token

        for piece in decode_stream(until_stopped(), tokenizer, stop_token_ids(tokenizer, model), stops, state):
            yield piece, state, len(ids), tokenizer
        yield None, state, len(ids), tokenizer


def _seed(body: ChatCompletionCreate, index: int) -> int | None:
    return None if body.seed is None else body.seed + index


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request) -> Any:
    body = decode_body(await request.body(), ChatCompletionCreate)
    _, _, n = _params(body)
    _messages(body)
    registry = services(request).registry
    await asyncio.to_thread(registry.lookup, body.model)  # unknown model -> 404 before any streaming starts
    completion_id, created = new_id("chatcmpl"), int(time.time())
    if body.stream:
        return Stream(_stream(request, body, n, completion_id, created), media_type="text/event-stream",
                      headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def run_all() -> ChatCompletion:
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index in range(n):
            pieces: list[TextPiece] = []
            state, tokenizer = Completion(), None
            for piece, state, prompt_tokens, tokenizer in _generate(request, body, _seed(body, index),
                                                                   threading.Event()):
                if piece is not None:
                    pieces.append(piece)
            logprobs = None
            if body.logprobs:
                logprobs = {"content": [e for p in pieces for e in _logprobs(p, tokenizer)], "refusal": None}
            choices.append(ChatChoice(index=index, message=AssistantMessage("".join(p.text for p in pieces)),
                                      finish_reason=state.finish_reason, logprobs=logprobs))
            completion_tokens += state.completion_tokens
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return ChatCompletion(id=completion_id, created=created, model=body.model, choices=choices, usage=usage)

    return await asyncio.to_thread(run_all)


def _sse(chunk: Any) -> bytes:
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


async def _stream(request: Request, body: ChatCompletionCreate, n: int, completion_id: str,
                  created: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop_flag = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for index in range(n):
                for item in _generate(request, body, _seed(body, index), stop_flag):
                    loop.call_soon_threadsafe(queue.put_nowait, (index, item))
        except BaseException as exc:  # surfaced to the client as an error chunk
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    def chunk(index: int, delta: ChunkDelta, finish: str | None = None, logprobs: Any = None) -> bytes:
        return _sse(ChatCompletionChunk(id=completion_id, created=created, model=body.model,
                                        choices=[ChunkChoice(index, delta, finish, logprobs)]))

    thread = threading.Thread(target=produce, name="honed-generate", daemon=True)
    thread.start()
    prompt_tokens, completion_tokens = 0, 0
    try:
        for index in range(n):
            yield chunk(index, ChunkDelta(role="assistant", content=""))
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                message = getattr(item, "message", None) or f"{type(item).__name__}: {item}"
                yield _sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
                break
            index, (piece, state, prompt_tokens, tokenizer) = item
            if piece is None:
                completion_tokens += state.completion_tokens
                yield chunk(index, ChunkDelta(), state.finish_reason)
                continue
            logprobs = {"content": _logprobs(piece, tokenizer), "refusal": None} if body.logprobs else None
            yield chunk(index, ChunkDelta(content=piece.text), None, logprobs)
        if body.stream_options and body.stream_options.include_usage:
            usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
            yield _sse(ChatCompletionChunk(id=completion_id, created=created, model=body.model, choices=[],
                                           usage=usage))
        yield b"data: [DONE]\n\n"
    finally:
        stop_flag.set()  # the client left or we finished: the generation thread ends at its next token
