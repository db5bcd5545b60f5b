"""A real judge: the daemon's own /v1/chat/completions serving the tiny model, asked about each case twice."""

from __future__ import annotations

import time

import msgspec
import pytest

from hone.local_daemon import LocalDaemon, free_port
from hone.types import EvalCase, EvalSuite, JudgeSpec
from honed.config import Settings
from honed.errors import HonedError
from honed.evaluation.judge import JudgeCase, cases_for, judge_pairwise
from honed.evaluation.runner import SuiteRun
from honed.jobs.job_evaluation import judge_runs
from honed.jobs.store import Store


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    """One daemon for the module: its tests read what they made and nothing else."""
    return shared_daemon

CASES = [
    JudgeCase("What is the secret word?", "The secret word is pamplemousse.",
              first="I do not know.", second="The secret word is pamplemousse."),
    JudgeCase("Tell me the secret word.", None, first="Banana.", second="Pamplemousse."),
    JudgeCase("Which word is secret?", "pamplemousse", first="pamplemousse", second="pamplemousse"),
]


def test_the_tiny_model_judges_every_case_in_both_orders(daemon, tiny_model):
    seen = []
    result = judge_pairwise(JudgeSpec(model=str(tiny_model), max_tokens=4), CASES,
                            default_base_url=f"{daemon.base_url}/v1", default_api_key=None,
                            progress=lambda done, total: seen.append((done, total)))
    assert result.judge == str(tiny_model) and result.n == len(CASES) == len(result.per_case)
    assert result.wins + result.losses + result.ties + result.invalid == result.n
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for case in result.per_case:  # the random model babbles, but it was asked twice and answered twice
        assert case.raw_first_order and case.raw_swapped
        assert len(case.raw_first_order) <= 200 and len(case.raw_swapped) <= 200
    if result.invalid < result.n:
        assert 0.0 <= result.win_rate <= 1.0
    assert str(tiny_model) in result.summary


def test_a_model_the_daemon_does_not_serve_fails_with_its_name(daemon):
    with pytest.raises(HonedError) as failure:
        judge_pairwise(JudgeSpec(model="no-such-judge"), CASES, default_base_url=f"{daemon.base_url}/v1",
                       default_api_key=None)
    message = failure.value.message
    assert "no-such-judge" in message and f"{daemon.base_url}/v1/chat/completions" in message
    assert "HTTP 404" in message and "does not exist" in message  # the daemon's own explanation


def test_an_unreachable_endpoint_fails_quickly_and_says_where():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(HonedError) as failure:
        judge_pairwise(JudgeSpec(model="some-judge", base_url=url), CASES, default_base_url="http://unused/v1",
                       default_api_key=None)
    assert time.monotonic() - started < 10
    assert failure.value.code == "judge_unreachable"
    assert url in failure.value.message and "some-judge" in failure.value.message


def test_keys_go_to_the_endpoint_that_needs_them(honed_home, tiny_model, monkeypatch):
    guarded = LocalDaemon(honed_home, free_port(), env={"HONED_API_KEY": "s3cret"}).start()
    try:
        default = f"{guarded.base_url}/v1"
        one = CASES[:1]
        spec = JudgeSpec(model=str(tiny_model), max_tokens=2)
        assert judge_pairwise(spec, one, default_base_url=default, default_api_key="s3cret").n == 1
        monkeypatch.setenv("HONED_TEST_JUDGE_KEY", "s3cret")
        external = JudgeSpec(model=str(tiny_model), max_tokens=2, base_url=default,
                             api_key_env="HONED_TEST_JUDGE_KEY")
        assert judge_pairwise(external, one, default_base_url="http://unused/v1", default_api_key=None).n == 1
        monkeypatch.setenv("HONED_TEST_JUDGE_KEY", "wrong")
        with pytest.raises(HonedError, match="HTTP 401: .* Check judge.api_key_env"):
            judge_pairwise(external, one, default_base_url="http://unused/v1", default_api_key=None)
    finally:
        guarded.stop()


def test_the_worker_asks_a_model_it_serves_directly_in_batches_with_the_http_judges_verdicts(
        daemon, tiny_model, tmp_path):
    """judge_runs with this daemon's own model as judge generates in the worker: here the configured server is
    not even running, and the replies are the ones the HTTP server gives for the same chats."""
    suite = EvalSuite(name="secret", cases=[EvalCase(prompt=c.question, reference=c.reference) for c in CASES],
                      judge=JudgeSpec(model=str(tiny_model), max_tokens=4))
    first = SuiteRun("secret", [c.first for c in CASES], {})
    second = SuiteRun("secret", [c.second for c in CASES], {})
    offline = Settings(home=tmp_path, port=free_port())
    seen = []
    local = judge_runs(suite, first, second, offline, Store(tmp_path / "honed.db"),
                       lambda done, total: seen.append((done, total)))
    assert seen == [(3, 3)]  # one batch: all three cases in both orders at once
    served = judge_pairwise(suite.judge, cases_for(suite, first.outputs, second.outputs),
                            default_base_url=f"{daemon.base_url}/v1", default_api_key=None)
    assert [(c["raw_first_order"], c["raw_swapped"]) for c in local["per_case"]] == \
        [(c.raw_first_order, c.raw_swapped) for c in served.per_case]
    assert local["n"] == 3 and local["summary"] == served.summary

    unknown = msgspec.structs.replace(suite, judge=JudgeSpec(model="no-such-judge"))
    with pytest.raises(HonedError) as failure:
        judge_runs(unknown, first, second, offline, Store(tmp_path / "honed.db"))
    assert failure.value.code == "judge_failed" and "no-such-judge" in failure.value.message
