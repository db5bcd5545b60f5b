"""The estimate prices an LLM judge the worker runs itself, and says when it cannot price one."""

from __future__ import annotations

import math

import msgspec
import pytest

from hone.types import EstimateProbe, EvalCase, EvalSuite, HonedOptions, JudgeSpec
from honed.evaluation.runner import MAX_ANSWER_ROWS, batch_sizes
from honed.planning.estimate import answering_seconds, estimate, judge_seconds

PROBE = EstimateProbe(cached=True, seconds=0, step_seconds_fixed=0.5, step_seconds_per_token=0.001,
                      forward_seconds_per_token=0.0004, decode_seconds_per_step=0.2, load_seconds=3.0,
                      peak_memory_bytes=1 << 30, decode_seconds_per_row=0.004, kv_bytes_per_token=46080)
HERE = "http://127.0.0.1:8420/v1"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def suite(cases: int, judge: JudgeSpec | None) -> EvalSuite:
    return EvalSuite(name="s", cases=[EvalCase(prompt="Write about the harbour at dawn.", reference="x" * 400)
                                      for _ in range(cases)], metrics=["distinct_2"], max_tokens=96, judge=judge)


def priced(options: HonedOptions):
    return estimate(model=MODEL, engine="torch", device="cpu", options=options, steps=[[512]] * 4, valid=[],
                    probe=PROBE, choices=[], samples=False, judge_base_url=HERE)


def test_a_judge_on_this_daemon_adds_its_batched_decode_and_prefill_to_the_evaluation_time():
    judge = JudgeSpec(model=MODEL, max_tokens=8)
    without = priced(HonedOptions(eval=suite(200, None)))
    judged = priced(HonedOptions(eval=suite(200, judge)))
    added = judged.eval_seconds - without.eval_seconds
    assert added == pytest.approx(PROBE.load_seconds + judge_seconds(suite(200, judge), PROBE))
    # 400 chats, at most MAX_ANSWER_ROWS at a time, 8 decode steps each; each prompt ~ question + reference +
    # two answers, and their KV cache allows fewer rows than the cap: more batches than the floor, not many more
    floor = math.ceil(400 / MAX_ANSWER_ROWS) * 8 * PROBE.decode_seconds_per_step + 400 * 8 * PROBE.decode_seconds_per_row
    batches = len(batch_sizes(400, 46080 * (300 + 8)))
    assert batches > math.ceil(400 / MAX_ANSWER_ROWS)
    prefill_cap = 400 * 600 * PROBE.forward_seconds_per_token
    assert floor < added - PROBE.load_seconds < floor + batches * 8 * PROBE.decode_seconds_per_step + prefill_cap
    assert judged.total_seconds == judged.train_seconds + judged.eval_seconds and not judged.warnings
    # more cases or a longer verdict never cost less
    assert judge_seconds(suite(400, judge), PROBE) > judge_seconds(suite(200, judge), PROBE)
    fewer = msgspec.structs.replace(judge, cases=50)
    assert judge_seconds(suite(200, fewer), PROBE) == pytest.approx(judge_seconds(suite(50, judge), PROBE))
    longer = msgspec.structs.replace(judge, max_tokens=32)
    assert judge_seconds(suite(200, longer), PROBE) > judge_seconds(suite(200, judge), PROBE)


def test_a_judge_elsewhere_is_not_priced_and_the_estimate_says_so():
    external = JudgeSpec(model="gpt-judge", base_url="https://judge.example/v1")
    without = priced(HonedOptions(eval=suite(50, None)))
    judged = priced(HonedOptions(eval=suite(50, external)))
    assert judged.eval_seconds == without.eval_seconds
    assert any("https://judge.example/v1 is not priced" in w for w in judged.warnings)
    other_model = priced(HonedOptions(eval=suite(50, JudgeSpec(model="some/other-judge"))))
    assert other_model.eval_seconds > without.eval_seconds
    assert any("'some/other-judge' is priced as if it were" in w for w in other_model.warnings)


def test_answering_is_priced_per_batch_and_per_row_and_never_cheaper_for_more_work():
    prompts = [40.0] * 200
    base = answering_seconds(prompts, 96, PROBE)
    # 200 short prompts fit two batches of 100: 2 x 96 steps of the fixed part, 200 x 96 of the per-row part
    decode = 2 * 96 * PROBE.decode_seconds_per_step + 200 * 96 * PROBE.decode_seconds_per_row
    assert base == pytest.approx(decode + 200 * 40 * PROBE.forward_seconds_per_token)
    assert answering_seconds(prompts * 2, 96, PROBE) > base
    assert answering_seconds(prompts, 128, PROBE) > base
    bigger_cache = msgspec.structs.replace(PROBE, kv_bytes_per_token=PROBE.kv_bytes_per_token * 8)
    assert answering_seconds(prompts, 96, bigger_cache) > base  # fewer rows fit a batch: more batches
    assert answering_seconds([], 96, PROBE) == 0
