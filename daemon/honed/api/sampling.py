"""Sampling options shared by /v1/chat/completions and /v1/completions, validated into GenerationParams."""

from __future__ import annotations

from honed.engines.base import GenerationParams
from honed.errors import InvalidRequest


def sampling_params(*, max_tokens: int | None, temperature: float | None, top_p: float | None, n: int | None,
                    top_logprobs: int, stop: str | list[str] | None, seed: int | None,
                    default_max_tokens: int) -> tuple[GenerationParams, list[str], int]:
    """(params, stop strings, n) or InvalidRequest naming the field; OpenAI's defaults where unset."""
    max_tokens = default_max_tokens if max_tokens is None else max_tokens
    if max_tokens < 1:
        raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
    temperature = 1.0 if temperature is None else temperature
    if not 0 <= temperature <= 2:
        raise InvalidRequest("temperature must be between 0 and 2", param="temperature")
    top_p = 1.0 if top_p is None else top_p
    if not 0 < top_p <= 1:
        raise InvalidRequest("top_p must be in (0, 1]", param="top_p")
    n = 1 if n is None else n
    if not 1 <= n <= 8:
        raise InvalidRequest("n must be between 1 and 8", param="n")
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20", param="top_logprobs")
    if seed is not None and not 0 <= seed < 2**63:  # what every engine's generator takes (MLX: no negatives)
        raise InvalidRequest("seed must be an integer in [0, 2^63)", param="seed")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise InvalidRequest("stop may hold at most 4 sequences", param="stop")
    params = GenerationParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                              top_logprobs=top_logprobs)
    return params, [s for s in stops if s], n


def choice_seed(seed: int | None, index: int) -> int | None:
    """Each of n choices samples with its own seed, so n > 1 with a seed gives n different answers."""
    return None if seed is None else seed + index
