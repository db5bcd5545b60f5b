from transformers import AutoTokenizer

from honed.data.jsonl import Example, Message
from honed.data.tokenize import IGNORE, prompt_ids, tokenize_example


def test_only_assistant_turns_carry_labels(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    example = Example((Message("system", "Be brief."), Message("user", "What colour is the sky?"),
                       Message("assistant", "Blue."), Message("user", "And grass?"),
                       Message("assistant", "Green.")), line=1)
    tokenized = tokenize_example(tokenizer, example, max_len=512)
    trained = [t for t, label in zip(tokenized.input_ids, tokenized.labels) if label != IGNORE]
    assert tokenizer.decode(trained) == "Blue.<|im_end|>\nGreen.<|im_end|>\n"
    assert [label for label in tokenized.labels if label != IGNORE] == trained
    full = tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in example.messages],
                                         tokenize=False)
    assert tokenizer.decode(tokenized.input_ids) == full
    assert not tokenized.truncated


def test_long_examples_are_cut_and_flagged(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    example = Example((Message("user", "word " * 200), Message("assistant", "ok")), line=3)
    tokenized = tokenize_example(tokenizer, example, max_len=32)
    assert len(tokenized.input_ids) == 32 and tokenized.truncated
    assert tokenized.trained_tokens == 0  # the answer fell off the end: the worker drops such examples


def test_generation_prompt_ends_with_the_assistant_header(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids = prompt_ids(tokenizer, [{"role": "user", "content": "Hi"}])
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_a_text_example_trains_on_every_token_and_ends_with_eos(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    example = Example((), line=7, text="Once upon a time there was a tokenizer.")
    tokenized = tokenize_example(tokenizer, example, max_len=512)
    assert tokenized.labels == tokenized.input_ids and tokenized.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(tokenized.input_ids[:-1]) == example.text
    assert "<|im_start|>" not in tokenizer.decode(tokenized.input_ids)  # no chat template around raw text
    cut = tokenize_example(tokenizer, example, max_len=4)
    assert len(cut.input_ids) == 4 and cut.truncated and cut.line == 7
