"""Answering eval cases in batches gives each case the answer it gets alone."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from honed.data.tokenize import prompt_ids
from honed.engines.base import GenerationParams
from honed.engines.torch_generate import generate_tokens, greedy_batch
from honed.evaluation import runner
from honed.evaluation.runner import batch_sizes, generate_answers
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


def test_rows_that_finish_leave_the_batch_and_the_others_answer_as_if_alone(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": f"{q} ({n})"}])
               for n, q in enumerate(QUESTIONS * 2)]
    params = GenerationParams(max_new_tokens=12, temperature=0)
    alone = [[t.id for t in generate_tokens(model, p, params, set())] for p in prompts]

    def ends_early(answer: list[int]) -> bool:
        return answer[1] % 2 == 0 if len(answer) == 2 else False

    short = [i for i in range(len(prompts)) if alone[i][1] % 2 == 0]
    assert 3 <= len(short) <= 7  # enough rows end for the batch to shrink, enough stay for it to matter
    together = greedy_batch(model, prompts, 12, set(), tokenizer.pad_token_id, finished=ends_early)
    assert together == [alone[i][:2] if i in short else alone[i] for i in range(len(prompts))]


def test_batches_fill_evenly_within_the_row_cap_and_the_cache_budget():
    assert batch_sizes(0, 1000) == []
    assert batch_sizes(200, 1000) == [100, 100]  # capped at MAX_ANSWER_ROWS = 128 -> two even batches
    assert batch_sizes(10, runner.ANSWER_CACHE_BYTES // 3) == [3, 3, 2, 2]  # three rows fill the budget
    assert batch_sizes(5, runner.ANSWER_CACHE_BYTES * 2) == [1] * 5  # a row over budget still runs, alone
    for count in (1, 7, 129, 300):
        sizes = batch_sizes(count, 10**6)
        assert sum(sizes) == count and max(sizes) - min(sizes) <= 1 and max(sizes) <= runner.MAX_ANSWER_ROWS


def test_answers_come_back_in_the_order_asked(tiny_model, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    monkeypatch.setattr(runner, "MAX_ANSWER_ROWS", 4)  # ten conversations: three batches
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS * 2]
    seen = []
    answers = generate_answers(model, tokenizer, conversations, 8, progress=lambda done, total: seen.append(done))
    singles = [generate_answers(model, tokenizer, [c], 8)[0] for c in conversations]
    assert answers == singles
    assert seen == [4, 7, 10]
