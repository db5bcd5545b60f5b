"""Time and memory a job will take, before it starts: its exact step schedule priced by a measured probe.

The schedule is the one the engine will run (same seed, same length-grouped batches, same micro-batches), so
the token count per step is exact; the probe supplies seconds per step (a + b x tokens), per validation token,
per generated token, and the memory peak at the widest micro-batch.
"""

from __future__ import annotations

import math
from pathlib import Path

from hone.types import Estimate, EstimateProbe, EvalSuite, HonedOptions, PlanChoice
from honed.data.tokenize import TokenizedExample, pack_examples
from honed.planning.probe import ProbeShape

SEQ_BUCKET = 32
"""Probes are measured at the widest batch rounded up to this, so similar jobs share a cached probe."""
CHARS_PER_TOKEN = 4
"""English text through a BPE tokenizer, for pricing judge prompts whose answers do not exist yet."""
JUDGE_PROMPT_FRAME_CHARS = 80
"""The judge prompt's own words around the fields ("Question:", "Answer A:", the reply instruction)."""


def padded(length: int) -> int:
    from honed.engines.schedule import PAD_MULTIPLE

    return math.ceil(length / PAD_MULTIPLE) * PAD_MULTIPLE


def schedule(train: list[TokenizedExample], options: HonedOptions, *, batch_size: int, n_epochs: int,
             seed: int) -> list[list[int]]:
    """Per optimizer step, the padded tokens of each of its micro-batches: what the engine will compute."""
    from honed.engines.schedule import epoch_batches, micro_batches

    rows = pack_examples(train, options.max_seq_len) if options.packing else train
    lengths = [len(e.input_ids) for e in rows]
    total = math.ceil(len(rows) / batch_size) * n_epochs
    if options.max_steps is not None:
        total = min(total, options.max_steps)
    steps: list[list[int]] = []
    for epoch in range(n_epochs):
        for batch in epoch_batches(lengths, batch_size, seed, epoch):
            if len(steps) == total:
                return steps
            steps.append([len(part) * padded(max(lengths[i] for i in part))
                          for part in micro_batches(batch, options.gradient_accumulation or 1)])
    return steps


def probe_shape(model_dir: Path, engine: str, options: HonedOptions, steps: list[list[int]], batch_size: int,
                train: list[TokenizedExample]) -> ProbeShape:
    micro = math.ceil(batch_size / (options.gradient_accumulation or 1))
    widest = max((t for step in steps for t in step), default=micro * 8) / micro
    labelled = sum(e.trained_tokens for e in train) / max(1, sum(len(e.input_ids) for e in train))
    return ProbeShape(
        model_dir=str(model_dir), engine=engine, adapter=options.adapter or "lora", precision=options.precision,
        lora_rank=options.lora_rank, target_modules=options.target_modules,
        gradient_checkpointing=bool(options.gradient_checkpointing), micro_batch=micro,
        seq_len=math.ceil(widest / SEQ_BUCKET) * SEQ_BUCKET, label_fraction=round(labelled, 1) or 0.1)


def validation_points(total_steps: int, options: HonedOptions) -> int:
    every = {options.eval_interval or options.checkpoint_interval, options.checkpoint_interval}
    return sum(1 for s in range(1, total_steps) if any(s % n == 0 for n in every)) + 1


def answering_seconds(prompt_tokens: list[float], max_tokens: int, probe: EstimateProbe) -> float:
    """Greedy answers to prompts of these lengths, batched as evaluation batches them (runner.batch_sizes): the
    prefill of every prompt, then each batch decoding to max_tokens. A batch runs until its longest answer stops,
    and one almost always reaches the cap (an untuned base rambles), so every batch is priced at it."""
    from honed.evaluation.runner import batch_sizes

    if not prompt_tokens:
        return 0.0
    row_bytes = probe.kv_bytes_per_token * (max(prompt_tokens) + max_tokens)
    decode = sum(max_tokens * (probe.decode_seconds_per_step + rows * probe.decode_seconds_per_row)
                 for rows in batch_sizes(len(prompt_tokens), int(row_bytes)))
    return sum(prompt_tokens) * probe.forward_seconds_per_token + decode


def suite_prompt_tokens(suite: EvalSuite) -> list[float]:
    from honed.evaluation.suite import case_messages

    return [sum(len(m["content"]) for m in case_messages(suite, case)) / CHARS_PER_TOKEN for case in suite.cases]


def judge_seconds(suite: EvalSuite, probe: EstimateProbe) -> float:
    """The suite's judge run in the worker (jobs.job_evaluation.judge_runs): every case asked in both orders,
    each prompt the question, the reference and two answers (priced at the suite's max_tokens each, the cap a
    rambling base model reaches), decoded up to the judge's max_tokens."""
    from honed.evaluation.judge import MAX_PROMPT_FIELD_CHARS, SYSTEM_PROMPT, judged_cases
    from honed.evaluation.suite import case_messages

    fixed_chars = len(SYSTEM_PROMPT) + len(suite.judge.criteria) + JUDGE_PROMPT_FRAME_CHARS
    prompts = []
    for case in judged_cases(suite):
        question = min(MAX_PROMPT_FIELD_CHARS, sum(len(m["content"]) for m in case_messages(suite, case)))
        reference = min(MAX_PROMPT_FIELD_CHARS, len(case.reference or ""))
        prompts += 2 * [(fixed_chars + question + reference) / CHARS_PER_TOKEN + 2 * suite.max_tokens]
    return answering_seconds(prompts, suite.judge.max_tokens, probe)


def estimate(*, model: str, engine: str, device: str, options: HonedOptions, steps: list[list[int]],
             valid: list[TokenizedExample], probe: EstimateProbe,
             choices: list[PlanChoice], samples: bool, judge_base_url: str) -> Estimate:
    """Price the schedule with the probe. `samples`: a sample answer is generated at each validation point;
    `judge_base_url`: this daemon's .../v1, whose models the worker judges with itself (other judges are
    left unpriced, with a warning)."""
    micro_steps = sum(len(s) for s in steps)
    tokens = sum(sum(s) for s in steps)
    train_seconds = probe.load_seconds + micro_steps * probe.step_seconds_fixed + tokens * probe.step_seconds_per_token
    from honed.jobs.job_evaluation import SAMPLE_TOKENS

    points = validation_points(len(steps), options)
    valid_tokens = sum(padded(len(e.input_ids)) for e in valid)
    suite = options.eval
    live = 0.0
    if suite is not None and options.eval_live_cases:
        shown = suite_prompt_tokens(suite)[:options.eval_live_cases]
        live = answering_seconds(shown, suite.max_tokens, probe)
    elif samples:
        live = answering_seconds([0.0], SAMPLE_TOKENS, probe)
    train_seconds += points * (valid_tokens * probe.forward_seconds_per_token + live)
    eval_seconds = 0.0
    suites = ([suite] if suite is not None else []) + list(options.guards)
    for each in suites:  # baseline and final: every case answered once each, plus loading the model twice
        eval_seconds += 2 * answering_seconds(suite_prompt_tokens(each), each.max_tokens, probe)
    if suites:
        eval_seconds += 2 * probe.load_seconds
    warnings = []
    if suite is not None and suite.judge is not None:
        from honed.evaluation.judge import is_default_endpoint

        if is_default_endpoint(suite.judge, judge_base_url):
            eval_seconds += probe.load_seconds + judge_seconds(suite, probe)
            if suite.judge.model != model:
                warnings.append(f"the judge '{suite.judge.model}' is priced as if it were '{model}'")
        else:
            warnings.append(f"the judge at {suite.judge.base_url} is not priced: its speed is not this machine's")
    if probe.cached is False and probe.seconds > 0:
        warnings.append(f"measured a {probe.seconds:.0f} s probe run on this machine (cached for next time)")
    return Estimate(
        object="estimate", model=model, engine=engine, device=device, steps=len(steps), micro_steps=micro_steps,
        trained_tokens=tokens, peak_memory_bytes=probe.peak_memory_bytes,
        device_peak_memory_bytes=probe.device_peak_memory_bytes, train_seconds=train_seconds,
        eval_seconds=eval_seconds, total_seconds=train_seconds + eval_seconds, choices=choices, probe=probe,
        warnings=warnings)
