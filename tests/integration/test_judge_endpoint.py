"""A real judge: the daemon's own /v1/chat/completions serving the tiny model, asked about each case twice."""

from __future__ import annotations

import time

import pytest

from hone.local_daemon import LocalDaemon, free_port
from hone.types import JudgeSpec
from honed.errors import HonedError
from honed.evaluation.judge import JudgeCase, judge_pairwise


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
