"""Token-by-token generation with a KV cache: the server streams, stops and counts from what this yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from honed.engines.base import GeneratedToken, GenerationParams


def _pick(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator | None) -> int:
    if params.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, sorted_ids = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the most likely token)
        keep = sorted_probs.cumsum(-1) - sorted_probs < params.top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(sorted_ids[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def generate_tokens(model: Any, prompt_ids: list[int], params: GenerationParams,
                    stop_ids: set[int]) -> Iterator[GeneratedToken]:
    """Yield generated tokens one by one (a stop id is yielded too, then generation ends).

    Logprobs are those of the model's distribution before temperature, as OpenAI reports them.
    """
    device = next(model.parameters()).device
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(params.seed)
    input_ids = torch.tensor([prompt_ids], device=device)
    past = None
    for _ in range(params.max_new_tokens):
        out = model(input_ids=input_ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        chosen = next_token(out.logits[0, -1].float().cpu(), params, generator)
        yield chosen
        if chosen.id in stop_ids:
            return
        input_ids = torch.tensor([[chosen.id]], device=device)


def next_token(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator | None) -> GeneratedToken:
    """The token picked from one position's logits, with its logprob (and the top ones when asked), the same
    for every engine that decodes through honed."""
    token = _pick(logits, params, generator)
    logprobs = torch.log_softmax(logits, dim=-1)
    top = None
    if params.top_logprobs:
        values, ids = logprobs.topk(params.top_logprobs)
        top = [(int(i), float(v)) for i, v in zip(ids, values)]
    return GeneratedToken(token, float(logprobs[token]), top)


@torch.inference_mode()
def greedy_batch(model: Any, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int],
                 pad_id: int, finished: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
    """Greedy continuations of several prompts at once (each ends with its stop id, if it reached one).

    On a CPU, decoding one sequence reads every weight per token and leaves the cores mostly waiting on memory;
    a batch reads them once for all its rows, so evaluation answers many cases in about the time of one. Prompts
    are left-padded with position ids counted from each row's first real token, so a row's answer is the one it
    would get alone. `finished(answer_ids)`, when given, ends a row early (a stop pattern)."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # only the last position's logits: the whole prompt's would be rows x width x vocab floats (~1 GB at 32 x 150)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    answers: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    for _ in range(max_new_tokens):
        chosen = out.logits[:, -1].argmax(-1)
        for row, token in enumerate(chosen.tolist()):
            if not done[row]:
                answers[row].append(token)
                done[row] = token in stop_ids or (finished is not None and finished(answers[row]))
        if all(done):
            break
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long, device=device)], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=positions,
                    past_key_values=out.past_key_values, use_cache=True)
    return answers
