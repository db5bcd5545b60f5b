"""Token-by-token generation with a KV cache: the server streams, stops and counts from what this yields."""

from __future__ import annotations

from collections.abc import Iterator
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
        logits = out.logits[0, -1].float().cpu()
        token = _pick(logits, params, generator)
        logprobs = torch.log_softmax(logits, dim=-1)
        top = None
        if params.top_logprobs:
            values, ids = logprobs.topk(params.top_logprobs)
            top = [(int(i), float(v)) for i, v in zip(ids, values)]
        yield GeneratedToken(token, float(logprobs[token]), top)
        if token in stop_ids:
            return
        input_ids = torch.tensor([[token]], device=device)
