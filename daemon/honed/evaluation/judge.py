"""LLM-as-judge: which of two models' answers does a judge model prefer, case by case?

Each case is asked twice, once with the first model's answer as "Answer A" and once swapped, because judges
(small ones especially) favour a position. The two verdicts are un-swapped and combined into one score for the
second model (1 both orders prefer it, 0 both prefer the first, 0.5 otherwise), and the scores into a win rate
with a bootstrap CI. The judge is any OpenAI-compatible /chat/completions endpoint, honed itself by default (the
worker then asks the model directly, in batches: jobs.job_evaluation.judge_runs).

Prompt building, verdict parsing, combining and aggregating are pure functions; `judge_with` takes the judge as
a function, and `judge_pairwise` is the one place that talks to an endpoint.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx
import msgspec

from hone.types import EvalCase, EvalSuite, JudgeSpec
from honed.errors import HonedError, InvalidRequest
from honed.evaluation import stats
from honed.evaluation.suite import case_messages

Verdict = Literal["A", "B", "tie"]

# Small judges have small contexts: each answer (and the question, and the reference) is cut to this many
# characters in the prompt.
MAX_PROMPT_FIELD_CHARS = 1500
# Raw judge replies kept per case for the report.
MAX_RAW_CHARS = 200
# Fewer valid cases than this: no confidence interval (one value would give a zero-width "interval").
MIN_CASES_FOR_CI = 2

SYSTEM_PROMPT = ("You are an impartial judge. You compare two answers to the same question and say which one "
                 "is better. Reply with exactly one word: A, B, or TIE.")


class JudgeCase(msgspec.Struct, frozen=True):
    """One question and the two models' answers to it."""

    question: str
    """The user's prompt as text (see `question_text`)."""
    reference: str | None
    first: str
    """The first model's answer (e.g. the base model)."""
    second: str
    """The second model's answer (e.g. the tuned model); the win rate is this model's."""


class JudgedCase(msgspec.Struct, frozen=True):
    """The judge's two verdicts on one case and the score they give the second model."""

    verdict_first_order: Verdict | None
    """The verdict with the first model's answer as A; None when the reply could not be read."""
    verdict_swapped: Verdict | None
    """The verdict with the second model's answer as A, as the judge said it (not un-swapped)."""
    score: float | None
    """1: both orders prefer the second model, 0: both prefer the first, 0.5: otherwise; None: both unreadable."""
    raw_first_order: str
    raw_swapped: str
    """The judge's replies, cut to MAX_RAW_CHARS characters."""


class JudgeResult(msgspec.Struct):
    """The judge's preference between two models over a set of cases."""

    judge: str
    """The judge model's name."""
    n: int
    wins: int
    """Cases where both orders preferred the second model."""
    losses: int
    """Cases where both orders preferred the first model."""
    ties: int
    """Cases scored 0.5: a tie, orders that disagree (position bias), or one unreadable verdict."""
    invalid: int
    """Cases where neither verdict could be read; left out of the win rate."""
    win_rate: float | None
    """The second model's mean score over valid cases; None when no case is valid."""
    low: float | None
    high: float | None
    """The 95% bootstrap CI of win_rate; None with fewer than MIN_CASES_FOR_CI valid cases."""
    consistency: float | None
    """The fraction of valid cases whose two verdicts agree once un-swapped."""
    significant: bool | None
    """Whether the CI excludes 0.5 (no preference); None without a CI."""
    summary: str
    per_case: list[JudgedCase]


# ---- building the prompt ------------------------------------------------------------------------------------

def _clip(text: str, *, keep_end: bool = False, limit: int = MAX_PROMPT_FIELD_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    # A long conversation keeps its end: the last user turn is what the answers reply to.
    return "[...] " + text[-limit:].lstrip() if keep_end else text[:limit].rstrip() + " [...]"


def question_text(messages: Sequence[dict[str, str]]) -> str:
    """What the judge is shown as the question: a lone user message's text, or the conversation as
    "Role: text" lines when there is a system prompt or several turns."""
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return messages[0].get("content") or ""
    return "\n".join(f"{m.get('role', 'user').capitalize()}: {m.get('content') or ''}" for m in messages)


def cases_for(suite: EvalSuite, first: Sequence[str], second: Sequence[str]) -> list[JudgeCase]:
    """Judge cases from a suite and two models' outputs for it (as `runner.run_suite` returns them), the
    question rendered from the chat each case sends (template and system prompt included), cut to the judge's
    `cases`. ValueError when the lengths differ."""
    if not len(suite.cases) == len(first) == len(second):
        raise ValueError(f"the suite has {len(suite.cases)} cases but the outputs number {len(first)} and "
                         f"{len(second)}; they must pair up")
    return [JudgeCase(question_text(case_messages(suite, case)), case.reference, a, b)
            for case, a, b in zip(judged_cases(suite), first, second)]


def judged_cases(suite: EvalSuite) -> list[EvalCase]:
    """The suite's cases its judge reads: the first `judge.cases` of them, or all."""
    limit = suite.judge.cases if suite.judge is not None else None
    return suite.cases if limit is None else suite.cases[:limit]


def judge_messages(criteria: str, case: JudgeCase, *, swapped: bool = False) -> list[dict[str, str]]:
    """The chat messages asking the judge to compare the case's answers: the first model's as Answer A, or
    with `swapped` the second model's as Answer A."""
    answer_a, answer_b = (case.second, case.first) if swapped else (case.first, case.second)
    parts = [f"Question:\n{_clip(case.question, keep_end=True)}"]
    if case.reference is not None:
        parts.append(f"Reference answer:\n{_clip(case.reference)}")
    parts += [f"Answer A:\n{_clip(answer_a)}", f"Answer B:\n{_clip(answer_b)}",
              f"{criteria.strip()}\nReply with exactly one of: A, B, TIE."]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]


# ---- reading the verdict ------------------------------------------------------------------------------------

_DECORATION = " \t\r\n*_`'\"[](){}<>#:"
# A verdict said first and closed by punctuation or the end ("B.", "[[A]]", "TIE: both are fine") wins even
# when the explanation after it names the other answer. "A tie" and "A better answer..." do not match.
_LEADING = re.compile(r"(A|B|tie)(?=$|[\s*_`'\"\])}>]*(?:$|[.,;:!\n]))", re.IGNORECASE)
# Said anywhere: "a tie", "tied", "equally good" (the article is part of it, so it is not read as answer A).
_TIE = re.compile(r"\b(?:(?:it'?s\s+)?an?\s+)?(?:tie|tied|draw|equal|equally)\b", re.IGNORECASE)
# "Answer B", "response a." (a lowercase letter only when nothing follows it, so "answer a question" is not A).
_NAMED = re.compile(r"\b(?i:answer|response|assistant|option)\s*:?\s*([AB]|[ab](?=\W*$|[.,;:!)\]*]))")
# A bare capital letter; a lowercase "a" is an article.
_LETTER = re.compile(r"(?<![\w'])([AB])(?![\w'])")
_WORDS: dict[str, Verdict] = {"a": "A", "b": "B", "tie": "tie"}


def parse_verdict(text: str) -> Verdict | None:
    """"A", "B" or "tie" from a judge's reply, or None when it names none of them or more than one.

    Read: "A", "**B**", "[[A]]", "Answer B is better", "tie", "TIE.", "B. Answer A misses the point".
    Refused: "A or B", "Answer A is better than Answer B", "Neither", "".
    """
    stripped = text.strip(_DECORATION)
    leading = _LEADING.match(stripped)
    if leading:
        return _WORDS[leading.group(1).lower()]
    found: set[Verdict] = set()
    if _TIE.search(stripped):
        found.add("tie")
    rest = _TIE.sub(" ", stripped)
    found.update(_WORDS[letter.lower()] for letter in _NAMED.findall(rest))
    found.update(_WORDS[letter.lower()] for letter in _LETTER.findall(_NAMED.sub(" ", rest)))
    return found.pop() if len(found) == 1 else None


# ---- combining and aggregating ------------------------------------------------------------------------------

_UNSWAP: dict[str, Verdict] = {"A": "B", "B": "A", "tie": "tie"}
_SECOND_SCORE = {"A": 0.0, "B": 1.0, "tie": 0.5}  # a first-order verdict as a score for the second model


def unswap(verdict: Verdict | None) -> Verdict | None:
    """A swapped-order verdict in first-order terms (A: the first model, B: the second)."""
    return None if verdict is None else _UNSWAP[verdict]


def combine(first_order: Verdict | None, swapped: Verdict | None) -> float | None:
    """The second model's score from both orders: 1 when both prefer it, 0 when both prefer the first model,
    0.5 for anything else (a tie, orders that disagree, one unreadable verdict); None when both are unreadable."""
    agreed = unswap(swapped)
    if first_order is None and agreed is None:
        return None
    if first_order is None or agreed is None or first_order != agreed:
        return 0.5
    return _SECOND_SCORE[first_order]


def judged_case(raw_first_order: str, raw_swapped: str) -> JudgedCase:
    """One case's outcome from the judge's two replies."""
    first, swapped = parse_verdict(raw_first_order), parse_verdict(raw_swapped)
    return JudgedCase(first, swapped, combine(first, swapped), raw_first_order[:MAX_RAW_CHARS],
                      raw_swapped[:MAX_RAW_CHARS])


def aggregate(judge: str, per_case: list[JudgedCase], *, label: str = "tuned") -> JudgeResult:
    """Counts, the second model's win rate with its bootstrap CI, and a one-line summary; `label` names the
    second model in the summary."""
    scores = [c.score for c in per_case if c.score is not None]
    wins, losses = scores.count(1.0), scores.count(0.0)
    ties = len(scores) - wins - losses
    invalid = len(per_case) - len(scores)
    agreeing = sum(1 for c in per_case if c.score is not None and c.verdict_first_order is not None
                   and c.verdict_first_order == unswap(c.verdict_swapped))
    win_rate = low = high = consistency = significant = None
    if scores:
        win_rate = sum(scores) / len(scores)
        consistency = agreeing / len(scores)
    if len(scores) >= MIN_CASES_FOR_CI:
        interval = stats.bootstrap_ci(scores)
        low, high = interval.low, interval.high
        significant = bool(low > 0.5 or high < 0.5)
    result = JudgeResult(judge, len(per_case), wins, losses, ties, invalid, win_rate, low, high, consistency,
                         significant, "", per_case)
    result.summary = describe(result, label=label)
    return result


def describe(result: JudgeResult, *, label: str = "tuned") -> str:
    """One line, e.g. "tuned wins 62% [48%, 75%] of 12 judged (7 wins, 3 losses, 2 ties; judge: X), not
    significant". Ties count half in the percentage."""
    unread = f"; {result.invalid} unreadable" if result.invalid else ""
    if result.win_rate is None:
        return f"no case could be judged: the judge ({result.judge}) gave no readable verdict in {result.n} cases"
    valid = result.n - result.invalid
    ci = "" if result.low is None else f" [{result.low:.0%}, {result.high:.0%}]"
    counts = (f"{result.wins} win{'s' * (result.wins != 1)}, {result.losses} loss{'es' * (result.losses != 1)}, "
              f"{result.ties} tie{'s' * (result.ties != 1)}{unread}")
    verdict = ("too few cases for significance" if result.significant is None
               else "significant" if result.significant else "not significant")
    return f"{label} wins {result.win_rate:.0%}{ci} of {valid} judged ({counts}; judge: {result.judge}), {verdict}"


# ---- asking the endpoint ------------------------------------------------------------------------------------

def _server_message(response: httpx.Response) -> str:
    """The error message an OpenAI-compatible server put in its reply, or the start of the body."""
    try:
        payload: Any = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(payload, dict) and payload.get("detail"):
        return str(payload["detail"])
    return response.text.strip()[:300]


def _headers(spec: JudgeSpec, uses_default: bool, default_api_key: str | None) -> dict[str, str]:
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise InvalidRequest(
                f"The judge's API key variable {spec.api_key_env} is not set in the honed daemon's environment; "
                f"set it where honed runs, or remove judge.api_key_env", param="judge.api_key_env",
                code="judge_api_key_missing")
        return {"Authorization": f"Bearer {key}"}
    if uses_default and default_api_key:
        return {"Authorization": f"Bearer {default_api_key}"}
    return {}


def _ask(http: httpx.Client, url: str, spec: JudgeSpec, messages: list[dict[str, str]]) -> str:
    body = {"model": spec.model, "messages": messages, "temperature": 0, "max_tokens": spec.max_tokens}
    where = f"judge endpoint {url} (model '{spec.model}')"
    try:
        response = http.post(url, json=body)
    except httpx.TimeoutException as exc:
        raise HonedError(f"The {where} did not answer within {http.timeout.read} s", param="judge",
                         code="judge_timeout") from exc
    except httpx.HTTPError as exc:
        raise HonedError(f"Could not reach the {where}: {exc}. Check judge.base_url and that the server is running",
                         param="judge.base_url", code="judge_unreachable") from exc
    if not response.is_success:
        message = _server_message(response).rstrip()
        if not message.endswith((".", "!", "?")):
            message += "."
        hint = {401: " Check judge.api_key_env.", 403: " Check judge.api_key_env.",
                404: " Check judge.model and judge.base_url."}.get(response.status_code, "")
        raise HonedError(f"The {where} failed with HTTP {response.status_code}: {message}{hint}", param="judge",
                         code="judge_failed")
    try:
        content = response.json()["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise HonedError(f"The {where} answered without a chat completion: {response.text[:300]}", param="judge",
                         code="judge_failed") from exc
    return content or ""


Ask = Callable[[list[list[dict[str, str]]]], list[str]]
"""The judge model: a batch of chats in, one greedy reply per chat out, in order."""


def judge_with(spec: JudgeSpec, cases: list[JudgeCase], ask: Ask, *, batch: int = 1,
               progress: Callable[[int, int], None] | None = None) -> JudgeResult:
    """Ask the judge about every case in both orders, `batch` cases per call of `ask`, and aggregate the
    verdicts. `progress(done, total)` is called after each call. Unreadable replies are not errors (they score
    as described in `combine`)."""
    per_case = []
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        chats = [chat for case in chunk for chat in (judge_messages(spec.criteria, case),
                                                     judge_messages(spec.criteria, case, swapped=True))]
        replies = ask(chats)
        per_case += [judged_case(replies[2 * i], replies[2 * i + 1]) for i in range(len(chunk))]
        if progress is not None:
            progress(len(per_case), len(cases))
    return aggregate(spec.model, per_case)


def is_default_endpoint(spec: JudgeSpec, default_base_url: str) -> bool:
    """Whether the judge is the model of that name on `default_base_url` (this daemon, unless told otherwise)."""
    return spec.base_url is None or spec.base_url.rstrip("/") == default_base_url.rstrip("/")


def judge_pairwise(spec: JudgeSpec, cases: list[JudgeCase], *, default_base_url: str,
                   default_api_key: str | None, progress: Callable[[int, int], None] | None = None,
                   timeout: float = 120.0) -> JudgeResult:
    """`judge_with` over an OpenAI-compatible endpoint, one request at a time (2 a case, greedy).

    `spec.base_url` None means `default_base_url` (this honed daemon's .../v1), which is sent
    `default_api_key`; another endpoint gets the key from the variable `spec.api_key_env` names, if any.
    Raises InvalidRequest before any request when `spec.api_key_env` names an unset variable, and HonedError
    naming the endpoint and model when it cannot be reached, times out, answers non-2xx (with the server's
    message) or answers something that is not a chat completion.
    """
    base_url = (spec.base_url or default_base_url).rstrip("/")
    headers = _headers(spec, is_default_endpoint(spec, default_base_url), default_api_key)
    url = f"{base_url}/chat/completions"
    with httpx.Client(headers=headers, timeout=timeout) as http:
        return judge_with(spec, cases, lambda chats: [_ask(http, url, spec, chat) for chat in chats],
                          progress=progress)
