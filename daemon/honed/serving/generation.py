"""Text generation for the OpenAI endpoints: one model held, tokens decoded into pieces, run off the event loop.

`generate_pieces` is the synchronous core (it runs in a worker thread); `pieces_in_thread` drives it from
asyncio for streaming responses, and stops it at its next token when the client goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgspec

from honed.engines import get_engine
from honed.engines.base import GenerationParams
from honed.errors import InvalidRequest
from honed.observability.instruments import GENERATED_TOKENS, TIME_TO_FIRST_TOKEN
from honed.serving.completion import Completion, TextPiece, decode_stream, stop_token_ids
from honed.serving.registry import ModelRegistry


class Step(msgspec.Struct):
    """One text piece (None once generation has finished), with the running state of the completion."""

    piece: TextPiece | None
    state: Completion
    prompt_tokens: int
    tokenizer: Any


def generate_pieces(registry: ModelRegistry, model_name: str, make_prompt: Callable[[Any], list[int]],
                    params: GenerationParams, stops: list[str], stop_flag: threading.Event,
                    max_tokens_given: bool = True) -> Iterator[Step]:
    """Generate for `model_name`, holding it exclusively; ends with a Step whose piece is None. InvalidRequest
    when the prompt and max_tokens do not fit the model's context (see fit_context)."""
    with registry.use(model_name) as (model, tokenizer, served):
        started = time.perf_counter()
        ids = make_prompt(tokenizer)
        params = fit_context(model, len(ids), params, max_tokens_given)
        state = Completion()
        stop_ids = stop_token_ids(tokenizer, model)
        tokens = get_engine(served.engine).generate(model, ids, params, stop_ids)

        def until_stopped():
            for token in tokens:
                if stop_flag.is_set():
                    return
                yield token

        first = True
        try:
            for piece in decode_stream(until_stopped(), tokenizer, stop_ids, stops, state):
                if first:
                    TIME_TO_FIRST_TOKEN.labels(model=model_name).observe(time.perf_counter() - started)
                    first = False
                yield Step(piece, state, len(ids), tokenizer)
        finally:
            GENERATED_TOKENS.labels(model=model_name).inc(state.completion_tokens)
        yield Step(None, state, len(ids), tokenizer)


def fit_context(model: Any, prompt_tokens: int, params: GenerationParams, max_tokens_given: bool) -> GenerationParams:
    """`params` with room in the model's context for the prompt and every token to generate. A max_tokens the
    request left to its default is cut to the room left; one it asked for that does not fit, or a prompt that
    fills the context by itself, is refused before any decoding (as OpenAI does): past the context the answer
    is noise, and a huge max_tokens would hold the model for as long as it liked."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int) or prompt_tokens + params.max_new_tokens <= limit:
        return params
    room = limit - prompt_tokens
    if room >= 1 and not max_tokens_given:
        return msgspec.structs.replace(params, max_new_tokens=room)
    raise InvalidRequest(f"this model's context is {limit:,} tokens, but the request needs "
                         f"{prompt_tokens + params.max_new_tokens:,} ({prompt_tokens:,} in the prompt, "
                         f"{params.max_new_tokens:,} for max_tokens); lower max_tokens or shorten the prompt",
                         param="max_tokens" if room >= 1 else None, code="context_length_exceeded")


def run_to_end(run: Callable[[threading.Event], Iterator[Step]]) -> tuple[list[TextPiece], Step]:
    """Drain one generation (no early stop): its text pieces and the final step (state, prompt size)."""
    steps = list(run(threading.Event()))
    return [s.piece for s in steps if s.piece is not None], steps[-1]


async def pieces_in_thread(runs: list[Callable[[threading.Event], Iterator[Step]]]) -> AsyncIterator[tuple[int, Step]]:
    """Run each generation (one per choice) in a thread, in turn; yield (choice index, step) as they come.

    An exception in the thread is re-raised here. Leaving the iterator early (a client disconnect) sets the
    stop flag, so the thread ends at its next token and releases the model.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop_flag = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for index, run in enumerate(runs):
                for step in run(stop_flag):
                    loop.call_soon_threadsafe(queue.put_nowait, (index, step))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    threading.Thread(target=produce, name="honed-generate", daemon=True).start()
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_flag.set()
