"""Packing short examples into full rows: nothing lost, nothing shared between the examples of a row."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from honed.data.example import Example, Message
from honed.data.tokenize import IGNORE, pack_examples, tokenize_example
from honed.engines.torch_train import collate, masked_loss


def _examples(tokenizer, count: int = 9):
    pairs = [(f"Question number {i}?" + " more" * (i % 4), f"Answer {i}" + " indeed" * (i % 3)) for i in range(count)]
    return [tokenize_example(tokenizer, Example((Message("user", q), Message("assistant", a)), line=i + 1), 256)
            for i, (q, a) in enumerate(pairs)]


def test_packing_fills_rows_and_keeps_every_example_whole(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = _examples(tokenizer)
    longest = max(len(e.input_ids) for e in examples)
    rows = pack_examples(examples, max_len=longest * 3)
    assert len(rows) < len(examples) and all(len(r.input_ids) <= longest * 3 for r in rows)
    # every example's ids appear exactly once, each starting at position 0
    pieces = []
    for row in rows:
        starts = [i for i, p in enumerate(row.positions) if p == 0] + [len(row.input_ids)]
        pieces += [tuple(row.input_ids[a:b]) for a, b in zip(starts, starts[1:])]
        assert all(row.labels[s] == IGNORE for s in starts[:-1])  # no label across a boundary
    assert sorted(pieces) == sorted(tuple(e.input_ids) for e in examples)
    assert pack_examples(examples, longest * 3) == rows  # deterministic


def test_a_packed_row_trains_exactly_like_its_examples_alone(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = _examples(tokenizer, 6)
    rows = pack_examples(examples, max_len=sum(len(e.input_ids) for e in examples))
    assert len(rows) == 1
    with torch.no_grad():
        packed_loss, packed_correct, packed_tokens = masked_loss(model, collate(rows, pad))
        total, correct, tokens = 0.0, 0, 0
        for example in examples:
            loss, right, count = masked_loss(model, collate([example], pad))
            total += float(loss) * count
            correct += right
            tokens += count
    # if the examples could see each other, later ones would be predicted from different context
    assert packed_tokens == tokens
    assert abs(float(packed_loss) - total / tokens) < 1e-4
    assert packed_correct == correct
