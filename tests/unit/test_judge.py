"""The judge's pure parts: reading verdicts, un-swapping and combining them, the win rate and its CI, the prompt."""

from __future__ import annotations

import msgspec
import pytest

from hone.local_daemon import free_port
from hone.types import EvalCase, EvalSuite, JudgeSpec
from honed.errors import InvalidRequest
from honed.evaluation.judge import (
    JudgeCase,
    JudgedCase,
    aggregate,
    cases_for,
    combine,
    judge_messages,
    judge_pairwise,
    judged_case,
    parse_verdict,
    question_text,
)


@pytest.mark.parametrize("text, verdict", [
    ("A", "A"), ("B", "B"), ("a", "A"), (" b\n", "B"),
    ("**B**", "B"), ("[[A]]", "A"), ("'B'", "B"), ("`A`", "A"),
    ("Answer A", "A"), ("Answer B is better", "B"), ("answer b.", "B"), ("Assistant A", "A"),
    ("I think A", "A"), ("B is better.", "B"), ("My verdict: [[B]]", "B"), ("Answer: a", "A"),
    ("B. Answer A misses the point", "B"),  # a verdict said first wins over the explanation after it
    ("A\nbecause it is correct", "A"),
    ("tie", "tie"), ("TIE.", "tie"), ("Tie: both are fine", "tie"), ("A tie.", "tie"), ("It's a tie", "tie"),
    ("Both are equally good", "tie"), ("tied", "tie"),
])
def test_clear_verdicts_are_read(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text", [
    "", "   ", "Neither", "I cannot decide", "The first one",
    "A or B", "Answer A is better than Answer B", "A better answer is B",
    "A and B are equally good",  # names both answers and a tie
    "Reply with exactly one of: A, B, TIE.",  # the judge echoing the instructions
    "They answer a question",  # "a" is an article here, not answer A
])
def test_replies_naming_none_or_several_verdicts_are_refused(text):
    assert parse_verdict(text) is None


@pytest.mark.parametrize("first_order, swapped, score", [
    ("B", "A", 1.0),     # both orders prefer the second model (it is B first, then A)
    ("A", "B", 0.0),     # both orders prefer the first model
    ("A", "A", 0.5),     # always the first position: position bias, no preference
    ("B", "B", 0.5),     # always the second position
    ("tie", "tie", 0.5),
    ("B", "tie", 0.5), ("tie", "A", 0.5), ("A", "tie", 0.5), ("tie", "B", 0.5),
    ("B", None, 0.5), (None, "A", 0.5), ("A", None, 0.5), (None, "tie", 0.5),
    (None, None, None),  # nothing readable: the case is invalid
])
def test_two_orders_combine_into_a_score_for_the_second_model(first_order, swapped, score):
    assert combine(first_order, swapped) == score


def _case(score: float | None) -> JudgedCase:
    replies = {1.0: ("B", "A"), 0.0: ("A", "B"), 0.5: ("tie", "tie"), None: ("hmm", "?")}[score]
    return judged_case(*replies)


def test_win_rate_counts_and_interval_on_a_known_set():
    result = aggregate("judge-x", [_case(s) for s in [1.0] * 5 + [0.0] + [0.5] * 2])
    assert (result.n, result.wins, result.losses, result.ties, result.invalid) == (8, 5, 1, 2, 0)
    assert result.win_rate == pytest.approx(6 / 8)
    assert result.low <= result.win_rate <= result.high
    assert result.consistency == 1.0  # every pair agreed once un-swapped (ties included)
    assert result.summary.startswith("tuned wins 75% [")
    assert "of 8 judged (5 wins, 1 loss, 2 ties; judge: judge-x)" in result.summary


def test_a_few_mixed_cases_are_not_significant():
    result = aggregate("j", [_case(s) for s in (1.0, 0.0, 0.5, 1.0, 0.0)])
    assert result.low < 0.5 < result.high
    assert result.significant is False and result.summary.endswith(", not significant")


def test_position_biased_pairs_score_half_and_lower_consistency():
    result = aggregate("j", [judged_case("A", "A"), judged_case("B", "A"), judged_case("B", "B"),
                             judged_case("B", "A")])
    assert (result.wins, result.losses, result.ties) == (2, 0, 2)
    assert result.win_rate == pytest.approx(0.75)
    assert result.consistency == pytest.approx(0.5)


def test_unreadable_pairs_are_counted_but_left_out_of_the_win_rate():
    cases = [_case(1.0), _case(1.0), _case(None), judged_case("B", "no idea"), _case(None)]
    result = aggregate("j", cases)
    assert (result.n, result.wins, result.losses, result.ties, result.invalid) == (5, 2, 0, 1, 2)
    assert result.wins + result.losses + result.ties + result.invalid == result.n
    assert result.win_rate == pytest.approx(2.5 / 3)
    assert result.consistency == pytest.approx(2 / 3)  # the half-read pair did not agree
    assert "of 3 judged" in result.summary and "2 unreadable" in result.summary


def test_nothing_readable_gives_no_win_rate_and_says_so():
    result = aggregate("tiny", [_case(None), _case(None)])
    assert (result.win_rate, result.low, result.high, result.significant, result.consistency) == (None,) * 5
    assert result.invalid == 2 and "tiny" in result.summary and "no readable verdict" in result.summary


def test_one_valid_case_has_no_interval():
    result = aggregate("j", [_case(1.0)])
    assert result.win_rate == 1.0 and result.low is None and result.significant is None
    assert "too few cases" in result.summary


def test_a_clear_sweep_is_significant():
    result = aggregate("j", [_case(1.0)] * 12, label="fine-tuned")
    assert result.win_rate == 1.0 and result.significant is True
    assert result.summary.startswith("fine-tuned wins 100% [100%, 100%] of 12 judged")


def test_raw_replies_are_kept_short():
    kept = judged_case("B" + "x" * 1000, "A")
    assert len(kept.raw_first_order) == 200 and kept.raw_swapped == "A"


def test_prompt_shows_both_answers_in_order_and_the_swap_swaps_them():
    case = JudgeCase("What is 2+2?", "4", first="FIRST-ANSWER five", second="SECOND-ANSWER four")
    system, user = judge_messages("Which is correct?", case)
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    assert text.index("What is 2+2?") < text.index("Reference answer:\n4") < text.index("Answer A:")
    assert text.index("Answer A:\nFIRST-ANSWER") < text.index("Answer B:\nSECOND-ANSWER")
    assert "Which is correct?" in text and "A, B, TIE" in text

    swapped = judge_messages("Which is correct?", case, swapped=True)[1]["content"]
    assert swapped.index("Answer A:\nSECOND-ANSWER") < swapped.index("Answer B:\nFIRST-ANSWER")
    assert swapped.replace("SECOND", "FIRST") != text  # not merely the same prompt


def test_prompt_without_reference_and_long_texts_cut():
    case = JudgeCase("q", None, first="x" * 5000, second="y")
    text = judge_messages("c", case)[1]["content"]
    assert "Reference" not in text and len(text) < 2000 and "x [...]" in text
    long_chat = JudgeCase("System: " + "s" * 5000 + "\nUser: the last question", None, "a", "b")
    shown = judge_messages("c", long_chat)[1]["content"]
    assert "[...] sss" in shown and "the last question" in shown


def test_question_text_and_cases_from_a_suite():
    suite = EvalSuite(name="s", system="Be brief.", prompt_template="{prompt}", cases=[
        EvalCase(prompt="Capital of France?", reference="Paris"),
        EvalCase(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Bye?"}])])
    assert question_text([{"role": "user", "content": "Only this"}]) == "Only this"
    cases = cases_for(suite, ["p1", "p2"], ["t1", "t2"])
    assert cases[0] == JudgeCase("System: Be brief.\nUser: Capital of France?", "Paris", "p1", "t1")
    assert cases[1].question == "System: Be brief.\nUser: Hi\nAssistant: Hello\nUser: Bye?"
    with pytest.raises(ValueError, match="pair up"):
        cases_for(suite, ["p1"], ["t1", "t2"])
    templated = EvalSuite(name="t", prompt_template="Classify ({lang}): {prompt}",
                          cases=[EvalCase(prompt="I love it", fields={"lang": "en"}, reference="positive")])
    assert cases_for(templated, ["x"], ["y"])[0].question == "Classify (en): I love it"
    first_only = msgspec.structs.replace(suite, judge=JudgeSpec(model="m", cases=1))
    assert cases_for(first_only, ["p1", "p2"], ["t1", "t2"]) == cases[:1]  # the judge reads its first `cases`


def test_unset_api_key_variable_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("HONED_TEST_JUDGE_KEY", raising=False)
    spec = JudgeSpec(model="gpt-judge", base_url=f"http://127.0.0.1:{free_port()}/v1",
                     api_key_env="HONED_TEST_JUDGE_KEY")
    with pytest.raises(InvalidRequest, match="HONED_TEST_JUDGE_KEY is not set"):
        judge_pairwise(spec, [JudgeCase("q", None, "a", "b")], default_base_url="http://127.0.0.1:1/v1",
                       default_api_key=None)
