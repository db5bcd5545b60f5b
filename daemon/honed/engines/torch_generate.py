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


def kv_bytes_per_token(config: Any, dtype: torch.dtype = torch.float32) -> int:
    """What one token of one row costs in a KV cache: keys and values of every layer."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * heads * head_dim * torch.empty((), dtype=dtype).element_size()


def _keep_rows(cache: Any, rows: torch.Tensor) -> None:
    # StaticCache has no batch_select_indices (torch.compile wants its tensors to stay put); decoding here is
    # eager, so its per-layer tensors can shrink to the rows still answering.
    for layer in cache.layers:
        if layer.is_initialized:
            layer.keys, layer.values = layer.keys[rows], layer.values[rows]


COMPACT_BELOW = 0.75
"""Finished rows leave the batch once fewer than this share of it is still answering: a decode step costs a
fixed part plus a part per row (measured on SmolLM2-135M, 2 CPU cores: ~130 ms + ~3.6 ms a row), so the rows
that stopped are worth dropping, but not one at a time."""


@torch.inference_mode()
def greedy_batch(model: Any, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int],
                 pad_id: int, finished: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
    """Greedy continuations of several prompts at once (each ends with its stop id, if it reached one).

    On a CPU, decoding one sequence reads every weight per token and leaves the cores mostly waiting on memory;
    a batch reads them once for all its rows, so evaluation answers many cases in about the time of one. Prompts
    are left-padded with position ids counted from each row's first real token, so a row's answer is the one it
    would get alone. `finished(answer_ids)`, when given, ends a row early (a stop pattern).

    The KV cache is allocated once for the longest answer (a growing cache copies itself every step: a quarter
    of the decode time, measured), and rows that finished are dropped from it as the batch thins out."""
    from transformers import StaticCache

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    # the mask covers every position the answers can reach, so no step has to grow it
    mask = torch.ones((len(prompts), width + max_new_tokens), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, :width - len(prompt)] = 0
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
    cache = StaticCache(config=model.config, max_cache_len=width + max_new_tokens)
    # only the last position's logits: the whole prompt's would be rows x width x vocab floats (~1 GB at 32 x 150)
    out = model(input_ids=ids, attention_mask=mask[:, :width], position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    answers: list[list[int]] = [[] for _ in prompts]
    live = list(range(len(prompts)))  # the prompt each batch row answers
    done = [False] * len(prompts)
    for step in range(max_new_tokens):
        chosen = out.logits[:, -1].argmax(-1)
        for row, token in zip(live, chosen.tolist()):
            if not done[row]:
                answers[row].append(token)
                done[row] = token in stop_ids or (finished is not None and finished(answers[row]))
        still = [at for at, row in enumerate(live) if not done[row]]
        if not still or step + 1 == max_new_tokens:
            break
        if len(still) < COMPACT_BELOW * len(live):  # until then a finished row rides along, its tokens unkept
            keep = torch.tensor(still, device=device)
            _keep_rows(cache, keep)
            mask, positions, chosen = mask[keep], positions[keep], chosen[keep]
            live = [live[at] for at in still]
        positions = positions[:, -1:] + 1
        out = model(input_ids=chosen[:, None], attention_mask=mask[:, :width + step + 1], position_ids=positions,
                    past_key_values=cache, use_cache=True)
    return answers
