"""Per-token log-probabilities and attention maps on the tiny model, plain and under a fresh LoRA adapter."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from honed.data.tokenize import IGNORE, prompt_ids
from honed.evaluation.token_view import (AttentionMap, TokenScores, attention_map, perplexity,
                                         reference_logprobs)

MESSAGES = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the secret word?"}]
REFERENCE = "The secret word is pamplemousse."


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module", params=[None, "CAUSAL_LM"], ids=["PeftModel", "PeftModelForCausalLM"])
def peft_model(tiny_model: Path, request: pytest.FixtureRequest):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # A second copy: get_peft_model injects LoRA layers into the model it wraps.
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type=request.param)
    return get_peft_model(base, config).eval()


def test_each_reference_token_gets_a_logprob_that_matches_the_training_loss(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    scores = reference_logprobs(model, tokenizer, MESSAGES, REFERENCE)

    answer = tokenizer(REFERENCE, add_special_tokens=False)["input_ids"]
    assert len(scores.tokens) == len(scores.logprobs) == len(answer)
    assert "".join(scores.tokens) == REFERENCE
    assert all(lp <= 0 for lp in scores.logprobs)
    prompt = prompt_ids(tokenizer, MESSAGES)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([prompt + answer]),
                     labels=torch.tensor([[IGNORE] * len(prompt) + answer])).loss
    assert -sum(scores.logprobs) == pytest.approx(loss.item() * len(answer), abs=1e-4)


def test_an_empty_reference_has_no_scores_and_no_perplexity(model_and_tokenizer) -> None:
    scores = reference_logprobs(*model_and_tokenizer, MESSAGES, "")

    assert scores == TokenScores([], [])
    with pytest.raises(ValueError, match="empty reference"):
        perplexity(scores)


def test_perplexity_is_exp_of_the_negative_mean_logprob() -> None:
    scores = TokenScores(["a", "b", "c"], [math.log(0.5), math.log(0.25), math.log(0.125)])

    assert perplexity(scores) == pytest.approx(4.0)
    assert perplexity(TokenScores(["x"], [0.0])) == 1.0


def test_attention_rows_sum_to_one_over_the_last_tokens(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    before = model.config._attn_implementation

    found = attention_map(model, tokenizer, MESSAGES, REFERENCE, layer=1, head=2, max_tokens=12)

    assert (found.layer, found.head) == (1, 2)
    assert len(found.tokens) == len(found.weights) == 12
    assert all(len(row) == 12 for row in found.weights)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in found.weights)
    assert all(w == 0 for i, row in enumerate(found.weights) for w in row[i + 1:])  # causal: no peeking ahead
    assert "".join(found.tokens).endswith(REFERENCE)
    assert model.config._attn_implementation == before  # eager only for the call


def test_a_short_sequence_is_drawn_whole(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    total = len(prompt_ids(tokenizer, MESSAGES)) + len(tokenizer(REFERENCE, add_special_tokens=False)["input_ids"])

    found = attention_map(model, tokenizer, MESSAGES, REFERENCE, layer=0, head=0, max_tokens=1000)

    assert len(found.tokens) == total
    assert found.weights[0] == [1.0] + [0.0] * (total - 1)


def test_negative_layer_and_head_count_from_the_last(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads

    last = attention_map(model, tokenizer, MESSAGES, REFERENCE, layer=-1, head=-1)
    explicit = attention_map(model, tokenizer, MESSAGES, REFERENCE, layer=layers - 1, head=heads - 1)

    assert (last.layer, last.head) == (layers - 1, heads - 1)
    assert last == explicit


@pytest.mark.parametrize(("layer", "head", "message"), [(4, 0, r"layer 4 .* 0\.\.3"), (-5, 0, "layer -5"),
                                                         (0, 4, r"head 4 .* 0\.\.3")])
def test_an_out_of_range_layer_or_head_names_the_valid_range(model_and_tokenizer, layer, head, message) -> None:
    with pytest.raises(ValueError, match=message):
        attention_map(*model_and_tokenizer, MESSAGES, REFERENCE, layer=layer, head=head)


def test_a_fresh_lora_adapter_sees_exactly_what_the_base_model_sees(model_and_tokenizer, peft_model) -> None:
    model, tokenizer = model_and_tokenizer

    assert reference_logprobs(peft_model, tokenizer, MESSAGES, REFERENCE) == \
        reference_logprobs(model, tokenizer, MESSAGES, REFERENCE)
    through_peft = attention_map(peft_model, tokenizer, MESSAGES, REFERENCE, layer=-1, head=1)
    assert isinstance(through_peft, AttentionMap)
    assert through_peft == attention_map(model, tokenizer, MESSAGES, REFERENCE, layer=-1, head=1)
    assert peft_model.get_base_model().config._attn_implementation == model.config._attn_implementation
