"""Answering eval cases in batches gives each case the answer it gets alone."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from honed.data.tokenize import prompt_ids
from honed.engines.base import GenerationParams
from honed.engines.torch_generate import generate_tokens, greedy_batch
from honed.evaluation.runner import generate_answers
from honed.serving.completion import stop_token_ids

QUESTIONS = ["Hi?", "What is the secret word, please tell me now?", "Tell me a story about a cat and a dog.",
             "Why?", "A much longer question that pads every other row of the batch quite a lot, does it not?"]


def test_a_batch_of_prompts_of_different_lengths_answers_each_as_if_alone(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    stops = stop_token_ids(tokenizer, model)
    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]
    alone = [[t.id for t in generate_tokens(model, p, GenerationParams(max_new_tokens=12, temperature=0), stops)]
             for p in prompts]
    together = greedy_batch(model, prompts, 12, stops, tokenizer.pad_token_id)
    assert together == alone
    assert len({len(p) for p in prompts}) > 2  # the rows really were padded differently


def test_answers_come_back_in_the_order_asked(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS * 2]  # more than one batch
    seen = []
    answers = generate_answers(model, tokenizer, conversations, 8, progress=lambda done, total: seen.append(done))
    singles = [generate_answers(model, tokenizer, [c], 8)[0] for c in conversations]
    assert answers == singles
    assert seen[-1] == len(conversations) and seen == sorted(seen)
