"""/v1/chat/completions: OpenAI's chat endpoint over base and fine-tuned models, streaming or not."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec
from litestar import Request, post

from hone.types import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionCreate,
    ChunkChoice,
    ChunkDelta,
    ErrorBody,
    ErrorResponse,
    Usage,
)
from honed.api.common import EventStream, decode_body, new_id, services
from honed.api.sampling import choice_seed, sampling_params
from honed.data.tokenize import prompt_ids
from honed.errors import HonedError, InvalidRequest
from honed.serving.completion import TextPiece
from honed.serving.generation import run_to_end, Step, generate_pieces, pieces_in_thread

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


def token_logprobs(piece: TextPiece, tokenizer: Any) -> list[dict[str, Any]]:
    """OpenAI's chat logprobs entries for the tokens of one piece."""
    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return [{**entry(t.id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in (t.top or [])]}
            for t in piece.tokens]


def sse(payload: Any) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def sse_error(exc: BaseException) -> bytes:
    """An error after the stream has started, as one `data:` chunk in OpenAI's error shape (a request error
    found only then, e.g. a prompt too long for the model, keeps its type, param and code)."""
    if isinstance(exc, HonedError):
        return sse(ErrorResponse(ErrorBody(exc.message, exc.error_type, exc.param, exc.code)))
    return sse(ErrorResponse(ErrorBody(f"{type(exc).__name__}: {exc}", "server_error")))


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request) -> Any:
    body = decode_body(await request.body(), ChatCompletionCreate)
    if body.top_logprobs and not body.logprobs:
        raise InvalidRequest("top_logprobs requires logprobs=true", param="top_logprobs")
    params, stops, n = sampling_params(
        max_tokens=body.max_completion_tokens or body.max_tokens, temperature=body.temperature, top_p=body.top_p,
        n=body.n, top_logprobs=body.top_logprobs or 0, stop=body.stop, seed=body.seed,
        default_max_tokens=DEFAULT_MAX_TOKENS)
    messages = _messages(body)
    registry = services(request).registry
    await asyncio.to_thread(registry.lookup, body.model)  # unknown model -> 404 before any streaming starts

    def run(index: int, stop_flag: threading.Event):
        return generate_pieces(registry, body.model, partial(prompt_ids, messages=messages),
                               msgspec.structs.replace(params, seed=choice_seed(body.seed, index)), stops, stop_flag,
                               max_tokens_given=(body.max_completion_tokens or body.max_tokens) is not None)

    runs = [partial(run, index) for index in range(n)]
    completion_id, created = new_id("chatcmpl"), int(time.time())
    if body.stream:
        return EventStream(_stream(body, runs, n, completion_id, created))

    def run_all() -> ChatCompletion:
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, choice_run in enumerate(runs):
            pieces, last = run_to_end(choice_run)
            logprobs = None
            if body.logprobs:
                logprobs = {"content": [e for p in pieces for e in token_logprobs(p, last.tokenizer)],
                            "refusal": None}
            choices.append(ChatChoice(index=index, message=AssistantMessage("".join(p.text for p in pieces)),
                                      finish_reason=last.state.finish_reason, logprobs=logprobs))
            prompt_tokens = last.prompt_tokens
            completion_tokens += last.state.completion_tokens
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return ChatCompletion(id=completion_id, created=created, model=body.model, choices=choices, usage=usage)

    return await asyncio.to_thread(run_all)


async def _stream(body: ChatCompletionCreate, runs: list, n: int, completion_id: str,
                  created: int) -> AsyncIterator[bytes]:
    def chunk(index: int, delta: ChunkDelta, finish: str | None = None, logprobs: Any = None) -> bytes:
        return sse(ChatCompletionChunk(id=completion_id, created=created, model=body.model,
                                       choices=[ChunkChoice(index, delta, finish, logprobs)]))

    for index in range(n):
        yield chunk(index, ChunkDelta(role="assistant", content=""))
    prompt_tokens, completion_tokens = 0, 0
    step: Step
    try:
        async for index, step in pieces_in_thread(runs):
            prompt_tokens = step.prompt_tokens
            if step.piece is None:
                completion_tokens += step.state.completion_tokens
                yield chunk(index, ChunkDelta(), step.state.finish_reason)
                continue
            logprobs = {"content": token_logprobs(step.piece, step.tokenizer), "refusal": None} \
                if body.logprobs else None
            yield chunk(index, ChunkDelta(content=step.piece.text), None, logprobs)
    except Exception as exc:  # headers are sent: the error travels as a chunk, as OpenAI's server does
        yield sse_error(exc)
        return
    if body.stream_options and body.stream_options.include_usage:
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        yield sse(ChatCompletionChunk(id=completion_id, created=created, model=body.model, choices=[], usage=usage))
    yield b"data: [DONE]\n\n"
