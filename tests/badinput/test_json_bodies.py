"""Bad JSON bodies, endpoint by endpoint: malformed, mistyped, missing, out of range, huge, or naming what is
not there. Each gets a 4xx naming the field and what to fix, and changes nothing stored."""

from __future__ import annotations

import pytest

from tests.badinput.conftest import Case, case_id, check_refused

JOB = {"model": "{model}", "training_file": "{file}"}
SUITE = {"name": "smoke", "cases": [{"prompt": "2+2?", "reference": "4"}]}
CHAT = {"model": "{model}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
SEARCH = {"job": {**JOB, "validation_file": "{file}"}, "space": {"lora_rank": {"low": 4, "high": 8}}, "n_trials": 2}
PREFERENCE = {"prompt": "p", "model_a": "a", "model_b": "b", "answer_a": "x", "answer_b": "y", "winner": "a"}
HUGE = 10**30
"""Past every integer type a database or tensor holds."""


def job(**fields):
    return {**JOB, **fields}


def honed(**options):
    return job(honed=options)


def post(path, body, status, message, param=...):
    return Case("POST", path, body, status, message, param)


JOBS = "/v1/fine_tuning/jobs"
CASES = [
    # fine-tuning jobs: the body itself
    post(JOBS, b"{not json", 400, "not valid JSON", None),
    post(JOBS, b"", 400, "the request body is empty", None),
    post(JOBS, b"[]", 400, "Expected `object`, got `array`", None),
    post(JOBS, b"\xff\xfe{}", 400, "not valid JSON", None),
    post(JOBS, b'{"model": "m", "training_file": "f", "seed": NaN}', 400, "not valid JSON", None),
    post(JOBS, b'{"model": "{model}", "training_file": "f", "hyperparameters": {"learning_rate_multiplier": 1e999}}',
         400, "Number out of range", "hyperparameters.learning_rate_multiplier"),
    post(JOBS, {"training_file": "{file}"}, 400, "model is required", "model"),
    post(JOBS, job(model=5), 400, "model: Expected `str`, got `int`", "model"),
    post(JOBS, job(metadata={"k": 5}), 400, "Expected `str`, got `int`"),
    post(JOBS, job(method={"type": "dpo"}), 400, "method.type: Invalid enum value 'dpo'", "method.type"),
    post(JOBS, job(hyperparameters={"n_epochs": True}), 400, "hyperparameters.n_epochs", "hyperparameters.n_epochs"),
    # fine-tuning jobs: values out of range, huge, negative, infinite
    post(JOBS, job(hyperparameters={"n_epochs": 10**12}), 400, "n_epochs must be at most 100",
         "hyperparameters.n_epochs"),
    post(JOBS, job(hyperparameters={"n_epochs": -3}), 400, "n_epochs must be a positive integer",
         "hyperparameters.n_epochs"),
    post(JOBS, job(hyperparameters={"batch_size": 10**12}), 400, "batch_size must be at most 1024",
         "hyperparameters.batch_size"),
    post(JOBS, job(hyperparameters={"learning_rate_multiplier": -1}), 400, "must be a positive number",
         "hyperparameters.learning_rate_multiplier"),
    post(JOBS, honed(lora_rank=10**9), 400, "honed.lora_rank must be at most 1024", "honed.lora_rank"),
    post(JOBS, honed(lora_rank=0), 400, "honed.lora_rank must be a positive integer", "honed.lora_rank"),
    post(JOBS, honed(lora_dropout=1.5), 400, "honed.lora_dropout must be in [0, 1)", "honed.lora_dropout"),
    post(JOBS, honed(warmup_ratio=-0.1), 400, "honed.warmup_ratio must be in [0, 1)", "honed.warmup_ratio"),
    post(JOBS, honed(weight_decay=-1), 400, "honed.weight_decay: Expected `float` >= 0.0", "honed.weight_decay"),
    post(JOBS, honed(gradient_accumulation=10**12), 400, "Expected `int` <= 1024", "honed.gradient_accumulation"),
    post(JOBS, job(hyperparameters={"batch_size": 4}, honed={"gradient_accumulation": 8}), 400,
         "honed.gradient_accumulation (8) cannot exceed the batch size (4)", "honed.gradient_accumulation"),
    post(JOBS, honed(max_seq_len=10**9), 400, "honed.max_seq_len must be at most 32768", "honed.max_seq_len"),
    post(JOBS, honed(max_minutes=0), 400, "honed.max_minutes must be a positive number", "honed.max_minutes"),
    post(JOBS, honed(divergence_factor=0.5), 400, "0 (off) or a number above 1", "honed.divergence_factor"),
    post(JOBS, honed(eval_live_cases=10**6), 400, "between 0 and 64", "honed.eval_live_cases"),
    post(JOBS, honed(engine="cuda"), 400, "honed.engine: Invalid enum value 'cuda'", "honed.engine"),
    post(JOBS, honed(lora_rnak=8), 400, "unknown field `lora_rnak`", "honed"),
    post(JOBS, job(seed=HUGE), 400, "seed must be an integer in [0, 2^31)", "seed"),
    post(JOBS, job(suffix="x" * 10_000), 400, "suffix must be 1-40 characters", "suffix"),
    post(JOBS, honed(early_stopping={"patience": 2}), 400, "needs a validation_file", "honed.early_stopping.metric"),
    # fine-tuning jobs: eval suites inside the job
    post(JOBS, honed(eval={"name": "s"}), 400, "the eval suite has no cases", "honed.eval.cases"),
    post(JOBS, honed(eval={**SUITE, "metrics": ["vibes"]}), 400, "unknown metric 'vibes'", "honed.eval.metrics"),
    post(JOBS, honed(eval={**SUITE, "stop_pattern": "("}), 400, "not a valid regular expression",
         "honed.eval.stop_pattern"),
    post(JOBS, honed(guards=[SUITE, SUITE]), 400, "two guard suites are named 'smoke'", "honed.guards[1].name"),
    # fine-tuning jobs: what the body refers to
    post(JOBS, job(model="acme/no-such-model"), 404, "is not on this machine", "model"),
    post(JOBS, job(model="a" * 100_000), 404, "is not on this machine", "model"),
    post(JOBS, job(model=""), 404, "model must name a base model", "model"),
    post(JOBS, job(training_file="file-missing"), 404, "training_file 'file-missing' does not exist", "training_file"),
    post(JOBS, job(training_file="{evals_file}"), 400, "has purpose 'evals', not 'fine-tune'", "training_file"),
    post(JOBS, job(validation_file="../../etc/passwd"), 404, "does not exist", "validation_file"),
    # planning: the same body, nothing created
    post("/v1/estimate", b"{bad", 400, "not valid JSON", None),
    post("/v1/estimate", job(hyperparameters={"n_epochs": 10**12}), 400, "n_epochs must be at most 100",
         "hyperparameters.n_epochs"),
    post("/v1/estimate", job(model="acme/nope"), 404, "is not on this machine", "model"),
    post("/v1/fine_tuning/suggest", {"model": "{model}"}, 400, "training_file is required", "training_file"),
    post("/v1/fine_tuning/suggest", job(training_file="file-nope"), 404, "does not exist", "training_file"),
    # chat completions
    post("/v1/chat/completions", {"model": "{model}"}, 400, "messages is required", "messages"),
    post("/v1/chat/completions", {**CHAT, "messages": []}, 400, "at least one message", "messages"),
    post("/v1/chat/completions", {**CHAT, "messages": "hi"}, 400, "messages: Expected `array`", "messages"),
    post("/v1/chat/completions", {**CHAT, "messages": [{"role": "wizard", "content": "hi"}]}, 400,
         "messages[0].role must be one of system, user", "messages[0].role"),
    post("/v1/chat/completions", {**CHAT, "messages": [{"content": "hi"}]}, 400, "role is required"),
    post("/v1/chat/completions", {**CHAT, "temperature": -1}, 400, "temperature must be between 0 and 2",
         "temperature"),
    post("/v1/chat/completions", {**CHAT, "n": 10**6}, 400, "n must be between 1 and 8", "n"),
    post("/v1/chat/completions", {**CHAT, "max_tokens": 0}, 400, "max_tokens must be at least 1", "max_tokens"),
    post("/v1/chat/completions", {**CHAT, "max_tokens": 10**12}, 400, "this model's context is 1,024 tokens",
         "max_tokens"),
    post("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "hi " * 5000}]}, 400,
         "shorten the prompt", None),
    post("/v1/chat/completions", {**CHAT, "top_p": 0}, 400, "top_p must be in (0, 1]", "top_p"),
    post("/v1/chat/completions", {**CHAT, "top_logprobs": 3}, 400, "requires logprobs=true", "top_logprobs"),
    post("/v1/chat/completions", {**CHAT, "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4", "stop"),
    post("/v1/chat/completions", {**CHAT, "seed": HUGE}, 400, "seed must be an integer in [0, 2^63)", "seed"),
    post("/v1/chat/completions", {**CHAT, "model": "acme/nope"}, 404, "The model 'acme/nope' does not exist",
         "model"),
    post("/v1/chat/completions", {**CHAT, "model": "acme/" + "a" * 5000}, 404, "does not exist", "model"),
    post("/v1/chat/completions", {**CHAT, "model": "ft:nope:x:ftjob-0", "stream": True}, 404, "does not exist",
         "model"),
    # completions
    post("/v1/completions", {"model": "{model}"}, 400, "prompt is required", "prompt"),
    post("/v1/completions", {"model": "{model}", "prompt": []}, 400, "non-empty list of strings", "prompt"),
    post("/v1/completions", {"model": "{model}", "prompt": ""}, 400, "prompt must not be empty", "prompt"),
    post("/v1/completions", {"model": "{model}", "prompt": 5}, 400, "prompt: Expected `str | array`", "prompt"),
    post("/v1/completions", {"model": "{model}", "prompt": "hi", "logprobs": 10}, 400, "between 0 and 5",
         "logprobs"),
    post("/v1/completions", {"model": "{model}", "prompt": "hi", "temperature": 3}, 400, "between 0 and 2",
         "temperature"),
    post("/v1/completions", {"model": "{model}", "prompt": "hi", "max_tokens": 10**12}, 400,
         "lower max_tokens", "max_tokens"),
    post("/v1/completions", {"model": "{model}", "prompt": "hi", "seed": -1}, 400, "seed must be", "seed"),
    post("/v1/completions", {"model": "acme/nope", "prompt": "hi"}, 404, "does not exist", "model"),
    # evals
    post("/v1/evals", {"models": ["{model}"]}, 400, "suite is required", "suite"),
    post("/v1/evals", {"suite": SUITE, "models": []}, 400, "models must name one model, or two", "models"),
    post("/v1/evals", {"suite": SUITE, "models": ["{model}", "{model}"]}, 400, "two different models", "models"),
    post("/v1/evals", {"suite": SUITE, "models": ["acme/nope"]}, 404, "is not on this machine", "models"),
    post("/v1/evals", {"suite": {"name": "s"}, "models": ["{model}"]}, 400, "has no cases", "suite.cases"),
    post("/v1/evals", {"suite": {**SUITE, "dataset": "cases.jsonl"}, "models": ["{model}"]}, 400,
         "must be an uploaded file id", "suite.dataset"),
    post("/v1/evals", {"suite": {**SUITE, "dataset": "file-nope"}, "models": ["{model}"]}, 404,
         "dataset 'file-nope' does not exist", "suite.dataset"),
    post("/v1/evals", {"suite": {**SUITE, "max_tokens": 10**12}, "models": ["{model}"]}, 400,
         "max_tokens must be between 1 and 4096", "suite.max_tokens"),
    post("/v1/evals", {"suite": {**SUITE, "inspect_case": 10**9}, "models": ["{model}"]}, 400,
         "inspect_case must be a case index", "suite.inspect_case"),
    post("/v1/evals", {"suite": {**SUITE, "label_pattern": "("}, "models": ["{model}"]}, 400,
         "is not a valid regex", "suite.label_pattern"),
    post("/v1/evals", {"suite": {**SUITE, "cases": [{"prompt": "x"}] * 10_001}, "models": ["{model}"]}, 400,
         "more than 10,000 cases", "suite.cases"),
    post("/v1/evals", {"suite": {**SUITE, "judge": {"model": "{model}", "cases": -5}},
                       "models": ["{model}", "acme/x"]}, 400, "judge.cases must be at least 2", "suite.judge.cases"),
    # hyperparameter searches
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {}}, 400, "space must name at least one", "space"),
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {"dropout": {"low": 0, "high": 1}}}, 400,
         "space.dropout cannot be searched", "space.dropout"),
    post("/v1/fine_tuning/searches", {**SEARCH, "n_trials": 10**6}, 400, "n_trials must be between 1 and 100",
         "n_trials"),
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {"lora_rank": {"low": 8, "high": 4}}}, 400,
         "low must be below high", "space.lora_rank"),
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {"learning_rate_multiplier": {"low": 0, "high": 1,
                                                                                       "log": True}}}, 400,
         "a log-scale range needs low > 0", "space.learning_rate_multiplier"),
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {"lora_rank": {"low": 1, "high": 10**9}}}, 400,
         "honed.lora_rank must be at most 1024", "space"),
    post("/v1/fine_tuning/searches", {**SEARCH, "space": {"weight_decay": {"low": -1, "high": 1}}}, 400,
         "Expected `float` >= 0.0", "space"),
    post("/v1/fine_tuning/searches", {**SEARCH, "seed": HUGE}, 400, "seed must be an integer in [0, 2^31)", "seed"),
    post("/v1/fine_tuning/searches", {**SEARCH, "trial_max_minutes": -1}, 400, "positive number",
         "trial_max_minutes"),
    post("/v1/fine_tuning/searches", {**SEARCH, "enqueue": [{"lora_rank": 100}]}, 400, "is outside the space",
         "enqueue[0]"),
    post("/v1/fine_tuning/searches", {**SEARCH, "metric": "accuracy"}, 400, "watches 'accuracy'", "metric"),
    post("/v1/fine_tuning/searches", {**SEARCH, "job": {**JOB, "model": "acme/nope", "validation_file": "{file}"}},
         404, "is not on this machine", "model"),
    # datasets
    post("/v1/datasets/analyze", {}, 400, "file is required", "file"),
    post("/v1/datasets/analyze", {"file": "file-nope"}, 404, "file 'file-nope' does not exist", "file"),
    post("/v1/datasets/analyze", {"file": "{file}", "max_seq_len": 10**9}, 400, "between 16 and 32768",
         "max_seq_len"),
    post("/v1/datasets/analyze", {"file": "{file}", "model": "acme/nope"}, 404, "is not on this machine", "model"),
    post("/v1/datasets/split", {"file": "{file}", "validation": 2}, 400, "validation must be a fraction in [0, 1)"),
    post("/v1/datasets/split", {"file": "{file}", "validation": 0.5, "test": 0.6}, 400,
         "must leave something to train on"),
    post("/v1/datasets/split", {"file": "{file}", "augment": 100}, 400, "augment must be between 0 and 10",
         "augment"),
    post("/v1/datasets/split", {"file": "{file}", "stratify": "label"}, 400, "needs labelled examples"),
    post("/v1/datasets/split", {"file": "{file}", "stratify": "bogus"}, 400, "Invalid enum value 'bogus'",
         "stratify"),
    post("/v1/datasets/split", {"file": "file-nope"}, 404, "file 'file-nope' does not exist", "file"),
    # preferences
    post("/v1/preferences", {**PREFERENCE, "prompt": " "}, 400, "prompt must not be empty", "prompt"),
    post("/v1/preferences", {**PREFERENCE, "answer_a": "x" * 100_001}, 400, "longer than 100,000", "answer_a"),
    post("/v1/preferences", {**PREFERENCE, "winner": "c"}, 400, "winner: Invalid enum value 'c'", "winner"),
    post("/v1/preferences", {"prompt": "p"}, 400, "is required"),
    Case("GET", "/v1/preferences?format=csv", status=400, message="format must be 'dpo'", param="format"),
    # aliases
    Case("PUT", "/v1/aliases/" + "a" * 65, {"model": "{model}"}, 400, "is not a valid name", "name"),
    Case("PUT", "/v1/aliases/bad%20name", {"model": "{model}"}, 400, "is not a valid name", "name"),
    Case("PUT", "/v1/aliases/%2E%2E", {"model": "{model}"}, 400, "is not a valid name", "name"),
    Case("PUT", "/v1/aliases/ok", {}, 400, "model is required", "model"),
    Case("PUT", "/v1/aliases/ok", {"model": "acme/nope"}, 404, "is not on this machine"),
    Case("PUT", "/v1/aliases/smollm2-135m-instruct", {"model": "{model}"}, 409, "already names a base model", "name"),
    # recipes
    post("/v1/recipes/nope/prepare", None, 404, "No recipe 'nope'. Known:", "name"),
    post("/v1/recipes/customer-support/prepare", {"subset": -1}, 400, "subset must be at least 2", "subset"),
    post("/v1/recipes/customer-support/prepare", {"subset": "x"}, 400, "subset: Expected `int | null`", "subset"),
    post("/v1/recipes/customer-support/prepare", {"model": "acme/nope"}, 404, "is not on this machine", "model"),
    # exports (the ones that need a fine-tuned model are in test_running_jobs)
    post("/v1/exports", {}, 400, "model is required", "model"),
    post("/v1/exports", {"model": "ftjob-nope"}, 404, "names no fine-tuning job", "model"),
    post("/v1/exports", {"model": "{cancelled_job}"}, 409, "only a succeeded job's model can be exported", "model"),
    post("/v1/exports", {"model": "ft:nope:x:ftjob-0"}, 404, "does not exist", "model"),
    post("/v1/exports", {"model": "x", "format": "zip"}, 400, "format: Invalid enum value 'zip'", "format"),
    post("/v1/models/acme/nope/export", None, 404, "is not on this machine"),
    post("/v1/models/acme/nope/export", b"{bad", 400, "not valid JSON"),
    post("/v1/models/{cancelled_job}/export", {"model": "other"}, 400, "the body names model 'other'", "model"),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_bad_body_is_refused_with_what_to_fix(api, stored, case):
    check_refused(api, stored, case)
