"""What a model thinks of one reference answer, token by token: log-probabilities and one attention head.

These feed the report's token-level view: the same reference scored by the base and the tuned model shows where
fine-tuning made the expected answer more (or less) likely. Each function is one forward pass in inference mode;
the model (a Hugging Face causal LM, or a peft PeftModel wrapping one) should be in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import torch

from honed.data.tokenize import prompt_ids
from honed.evaluation import metrics


class TokenScores(msgspec.Struct):
    """The reference's tokens (each decoded to text) and the log-probability the model gave each one."""

    tokens: list[str]
    logprobs: list[float]


class AttentionMap(msgspec.Struct):
    """One head's attention over a window of tokens: weights[i][j] is how much token i attends to token j."""

    tokens: list[str]
    weights: list[list[float]]
    layer: int
    head: int


def _sequence(tokenizer: Any, messages: list[dict[str, str]], reference: str) -> tuple[list[int], list[int]]:
    """(prompt ids, reference ids): the chat prompt ready for the assistant's turn, then the bare reference."""
    return prompt_ids(tokenizer, messages), tokenizer(reference, add_special_tokens=False)["input_ids"]


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def reference_logprobs(model: Any, tokenizer: Any, messages: list[dict[str, str]], reference: str) -> TokenScores:
    """log P(reference token | chat prompt, earlier reference tokens) for each token of `reference`.

    The reference is tokenized without special tokens and appended to `prompt_ids(tokenizer, messages)`; one
    forward pass computes logits only at the positions that predict the reference, in float32. An empty
    reference gives empty lists.
    """
    prompt, answer = _sequence(tokenizer, messages, reference)
    if not answer:
        return TokenScores([], [])
    ids = torch.tensor([prompt + answer], device=_device(model))
    with torch.inference_mode():
        # The last len(answer) + 1 positions; the very last predicts past the reference, so it is dropped.
        logits = model(input_ids=ids, logits_to_keep=len(answer) + 1).logits[0, :-1]
        logprobs = logits.float().log_softmax(dim=-1)
        picked = logprobs.gather(1, torch.tensor(answer, device=logprobs.device).unsqueeze(1)).squeeze(1)
    return TokenScores(_token_texts(tokenizer, answer), picked.cpu().tolist())


def perplexity(scores: TokenScores) -> float:
    """exp(-mean log-probability) of the reference's tokens; ValueError when the reference had no tokens."""
    if not scores.logprobs:
        raise ValueError("perplexity of an empty reference is undefined: the reference has no tokens")
    return metrics.perplexity([scores.logprobs])


def _hf_model(model: Any) -> Any:
    """The transformers model itself, under a peft wrapper if there is one."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Eager attention for the duration (sdpa, the default, does not return attention weights), then restored.

    The switch is on the shared config, so it must not overlap another thread's use of the same model."""
    inner = _hf_model(model)
    before = inner.config._attn_implementation
    inner.set_attn_implementation("eager")
    try:
        yield
    finally:
        inner.set_attn_implementation(before)


def _resolve(index: int, count: int, what: str) -> int:
    if not -count <= index < count:
        raise ValueError(f"{what} {index} is out of range: this model has {count} {what}s, "
                         f"so use 0..{count - 1} (or -{count}..-1 counting from the last)")
    return index % count


def attention_map(model: Any, tokenizer: Any, messages: list[dict[str, str]], reference: str,
                  layer: int, head: int, max_tokens: int = 48) -> AttentionMap:
    """Attention weights of one layer and head over the last `max_tokens` tokens of prompt + reference.

    The full sequence goes through the model (so the weights are the real ones in context), then the square
    block of the window's rows and columns is kept. Attention to tokens before the window is dropped and each
    row is renormalised to sum to 1 within the window, so the map shows where attention goes among the tokens
    drawn. The pass keeps every layer's weights (layers x heads x length² floats) until it returns, so it is
    meant for one case of ordinary length. Negative `layer`/`head` count from the last; the returned `layer`
    and `head` are non-negative.
    Raises ValueError when the layer or head is out of range (the message names the valid range) or
    `max_tokens` is below 1.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    config = _hf_model(model).config.get_text_config()
    layer = _resolve(layer, config.num_hidden_layers, "layer")
    head = _resolve(head, config.num_attention_heads, "head")
    prompt, answer = _sequence(tokenizer, messages, reference)
    full = prompt + answer
    ids = full[-max_tokens:]
    sequence = torch.tensor([full], device=_device(model))
    with _eager_attention(model), torch.inference_mode():
        attentions = model(input_ids=sequence, output_attentions=True, logits_to_keep=1).attentions
        window = attentions[layer][0, head, -len(ids):, -len(ids):].float()
        window = window / window.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return AttentionMap(_token_texts(tokenizer, ids), window.cpu().tolist(), layer, head)
