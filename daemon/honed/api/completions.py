"""/v1/completions: OpenAI's plain-prompt completion endpoint (no chat template), streaming or not."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec
from litestar import Request, post

from hone.types import CompletionChoice, CompletionCreate, TextCompletion, Usage
from honed.api.chat import sse, sse_error
from honed.api.common import EventStream, decode_body, new_id, services
from honed.api.sampling import choice_seed, sampling_params
from honed.errors import InvalidRequest
from honed.serving.completion import TextPiece
from honed.serving.generation import run_to_end, generate_pieces, pieces_in_thread

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


def _encode(tokenizer: Any, prompt: str) -> list[int]:
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def _logprobs(pieces: list[TextPiece], tokenizer: Any, offset: int) -> dict[str, Any]:
    """OpenAI's legacy logprobs object: parallel lists of tokens, their logprobs, top alternatives, offsets."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    for piece in pieces:
        for token in piece.tokens:
            text = tokenizer.decode([token.id])
            tokens.append(text)
            token_logprobs.append(token.logprob)
            top.append({tokenizer.decode([i]): lp for i, lp in (token.top or [])})
            offsets.append(offset)
            offset += len(text)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}


@post("/v1/completions", status_code=200)
async def completions(request: Request) -> Any:
    body = decode_body(await request.body(), CompletionCreate)
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts:
        raise InvalidRequest("prompt must be a string or a non-empty list of strings", param="prompt")
    if not all(prompts):  # nothing to continue from: a tokenizer without a BOS token gives no ids at all
        raise InvalidRequest("prompt must not be empty; give the text to continue", param="prompt")
    if body.logprobs is not None and not 0 <= body.logprobs <= 5:
        raise InvalidRequest("logprobs must be between 0 and 5", param="logprobs")
    params, stops, n = sampling_params(
        max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p, n=body.n,
        top_logprobs=body.logprobs or 0, stop=body.stop, seed=body.seed, default_max_tokens=DEFAULT_MAX_TOKENS)
    registry = services(request).registry
    await asyncio.to_thread(registry.lookup, body.model)

    # choice i is prompt i // n, sample i % n, as OpenAI orders them
    def run(index: int, stop_flag: threading.Event):
        prompt = prompts[index // n]
        return generate_pieces(registry, body.model, partial(_encode, prompt=prompt),
                               msgspec.structs.replace(params, seed=choice_seed(body.seed, index)), stops, stop_flag,
                               max_tokens_given=body.max_tokens is not None)

    runs = [partial(run, index) for index in range(len(prompts) * n)]
    completion_id, created = new_id("cmpl"), int(time.time())
    if body.stream:
        return EventStream(_stream(body, prompts, n, runs, completion_id, created))

    def run_all() -> TextCompletion:
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, choice_run in enumerate(runs):
            pieces, last = run_to_end(choice_run)
            prefix = prompts[index // n] if body.echo else ""
            logprobs = _logprobs(pieces, last.tokenizer, len(prefix)) if body.logprobs is not None else None
            choices.append(CompletionChoice(index=index, text=prefix + "".join(p.text for p in pieces),
                                            finish_reason=last.state.finish_reason, logprobs=logprobs))
            if index % n == 0:
                prompt_tokens += last.prompt_tokens
            completion_tokens += last.state.completion_tokens
        return TextCompletion(id=completion_id, created=created, model=body.model, choices=choices,
                              usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens))

    return await asyncio.to_thread(run_all)


async def _stream(body: CompletionCreate, prompts: list[str], n: int, runs: list, completion_id: str,
                  created: int) -> AsyncIterator[bytes]:
    def chunk(index: int, text: str, finish: str | None = None, logprobs: Any = None) -> bytes:
        return sse(TextCompletion(id=completion_id, created=created, model=body.model,
                                  choices=[CompletionChoice(index, text, finish, logprobs)]))

    prompt_tokens, completion_tokens, offsets = 0, 0, {}
    try:
        if body.echo:
            for index in range(len(runs)):
                yield chunk(index, prompts[index // n])
        async for index, step in pieces_in_thread(runs):
            if step.piece is None:
                completion_tokens += step.state.completion_tokens
                prompt_tokens += step.prompt_tokens if index % n == 0 else 0
                yield chunk(index, "", step.state.finish_reason)
                continue
            logprobs = None
            if body.logprobs is not None:
                logprobs = _logprobs([step.piece], step.tokenizer, offsets.get(index, 0))
                offsets[index] = offsets.get(index, 0) + len(step.piece.text)
            yield chunk(index, step.piece.text, None, logprobs)
    except Exception as exc:  # headers are sent: the error travels in the stream
        yield sse_error(exc)
        return
    if body.stream_options and body.stream_options.include_usage:
        yield sse(TextCompletion(id=completion_id, created=created, model=body.model, choices=[],
                                 usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)))
    yield b"data: [DONE]\n\n"
