import pytest
from transformers import AutoTokenizer

from honed.engines.base import GeneratedToken
from honed.serving.completion import Completion, decode_stream


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def tokens_of(tokenizer, text, then=()):
    return [GeneratedToken(i, -0.5) for i in tokenizer(text, add_special_tokens=False)["input_ids"] + list(then)]


def run(tokenizer, tokens, stops=()):
    state = Completion()
    pieces = list(decode_stream(tokens, tokenizer, {tokenizer.eos_token_id}, list(stops), state))
    return "".join(p.text for p in pieces), state


def test_stop_token_ends_with_finish_reason_stop(tokenizer):
    text, state = run(tokenizer, tokens_of(tokenizer, "The sky is blue.", [tokenizer.eos_token_id]))
    assert text == "The sky is blue." and state.finish_reason == "stop"
    assert state.completion_tokens == len(tokenizer("The sky is blue.", add_special_tokens=False)["input_ids"])


def test_running_out_of_tokens_is_finish_reason_length(tokenizer):
    text, state = run(tokenizer, tokens_of(tokenizer, "The sky is"))
    assert text == "The sky is" and state.finish_reason == "length"


def test_stop_string_cuts_the_text_before_it(tokenizer):
    text, state = run(tokenizer, tokens_of(tokenizer, "red, green. blue, yellow"), stops=[". b"])
    assert text == "red, green" and state.finish_reason == "stop"


def test_a_partial_stop_string_is_released_when_it_does_not_complete(tokenizer):
    text, state = run(tokenizer, tokens_of(tokenizer, "one END? no, END2"), stops=["END!"])
    assert text == "one END? no, END2" and state.finish_reason == "length"


def test_multibyte_characters_are_never_split(tokenizer):
    text, _ = run(tokenizer, tokens_of(tokenizer, "café 🍊 ok"))
    assert text == "café 🍊 ok"
    state = Completion()
    pieces = list(decode_stream(tokens_of(tokenizer, "🍊🍊"), tokenizer, set(), [], state))
    assert all("\ufffd" not in p.text for p in pieces)
