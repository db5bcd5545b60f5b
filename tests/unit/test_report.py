"""The HTML job report, rendered from a real SmolLM2 job's events and from hand-made edge cases."""

from __future__ import annotations

import copy
import math
import json
import re
from pathlib import Path

import pytest
from markupsafe import Markup

from honed.evaluation.report import render_job_report, word_diff

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo-job.json"


@pytest.fixture
def demo() -> dict:
    return json.loads(DEMO.read_text())


def without_kinds(events: list[dict], *kinds: str) -> list[dict]:
    return [e for e in events if e["kind"] not in kinds]


def test_demo_job_report_shows_the_job_its_gain_plots_and_every_case(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"])

    assert demo["job"]["id"] in html
    assert demo["job"]["fine_tuned_model"] in html
    summary = html.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    assert "0.00 [0.00, 0.00]" in summary and "0.83 [0.58, 1.00]" in summary
    assert "+0.83 [+0.58, +1.00]" in summary
    assert ">significant<" in summary
    assert html.count("<svg") >= 2
    assert len(re.findall(r'<tr class="case"', html)) == 12
    assert "<ins>" in html and "<del>" in html
    assert "4,884,480 / 139,399,488" in html
    assert 'data-sort="improvement"' in html


def test_report_makes_no_requests_to_the_network(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"])

    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html
    assert not re.search(r"url\(\s*[^#\s]", html)  # only url(#id) references inside the SVGs


def test_job_without_eval_or_checkpoints_still_gets_a_loss_plot(demo: dict) -> None:
    job = copy.deepcopy(demo["job"])
    job["honed"]["eval"] = None
    job["honed"]["result"]["eval"] = None
    events = without_kinds(demo["events"], "eval", "checkpoint")

    html = render_job_report(job, events)

    assert '<table class="summary">' not in html
    assert "ran no evaluation suite" in html
    assert 'class="case"' not in html
    assert html.count("<svg") == 2  # loss and learning rate, no metric bars
    assert "Loss" in html


def test_failed_job_shows_its_error_message(demo: dict) -> None:
    job = copy.deepcopy(demo["job"])
    job.update(status="failed", fine_tuned_model=None, finished_at=None, trained_tokens=None, honed=None,
               error={"code": "out_of_memory", "message": "CUDA ran out of memory at step 3", "param": None})
    metrics = [e for e in demo["events"] if e["kind"] == "metrics"][:3]
    events = [*metrics, {"id": "ftevent-99", "seq": 99, "created_at": job["created_at"] + 60, "level": "error",
                         "message": "Training failed: out of memory", "type": "message", "kind": "status",
                         "data": {"status": "failed"}}]

    html = render_job_report(job, events)

    assert 'class="failed"' in html
    assert "CUDA ran out of memory at step 3" in html
    assert "Training failed: out of memory" in html.split("<h2>Warnings</h2>", 1)[1]


def test_job_with_no_events_at_all_renders(demo: dict) -> None:
    job = copy.deepcopy(demo["job"])
    job.update(status="queued", honed=None, finished_at=None, trained_tokens=None, fine_tuned_model=None)

    html = render_job_report(job, [])

    assert job["id"] in html and "<svg" not in html


def test_model_output_is_html_escaped(demo: dict) -> None:
    events = copy.deepcopy(demo["events"])
    final = next(e for e in events if e["kind"] == "eval" and e["data"]["phase"] == "final")
    final["data"]["run"]["outputs"][0] = 'Sure: <script>alert(1)</script> & "done"'
    events.append({"id": "ftevent-100", "seq": 100, "created_at": 0, "level": "warn", "type": "message",
                   "kind": "warning", "message": "<b>bold</b> warning", "data": None})

    html = render_job_report(demo["job"], events)

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; warning" in html


def test_word_diff_marks_inserted_and_deleted_words() -> None:
    base, tuned = word_diff("The kettle has a 2-year warranty.", "The kettle has a 3-year warranty <now>.")

    assert str(base) == "The kettle has a <del>2-year warranty.</del>"
    assert str(tuned) == "The kettle has a <ins>3-year warranty &lt;now&gt;.</ins>"


def test_word_diff_of_equal_texts_marks_nothing() -> None:
    base, tuned = word_diff("same words here", "same words here")

    assert str(base) == str(tuned) == "same words here"


# --------------------------------------------------------------------- guard suites, regressions, judge, live
# validation, token-level view and confusion matrices, from events built by hand the way the worker writes them.

GUARD = "general-knowledge"


def event(kind: str, data: dict, level: str = "info", message: str = "") -> dict:
    return {"id": "ftevent-900", "seq": 900, "created_at": 1795659400, "level": level, "message": message,
            "type": "message", "kind": kind, "data": data}


def guard_events(before: float = 0.9, after: float = 0.4, regressed: bool = True) -> list[dict]:
    """A guard suite scored with the main suite's own metric name, after the main suite's events."""
    def run(value: float) -> dict:
        return {"suite": GUARD, "outputs": ["Paris"], "metrics": {"contains_all": {
            "name": "contains_all", "value": value, "low": value - 0.1, "high": value + 0.05, "per_example": [value]}}}

    metric = {"name": "contains_all", "before": before, "after": after, "difference": after - before,
              "low": after - before - 0.1, "high": after - before + 0.1, "relative_gain": after / before - 1,
              "significant": True, "summary": f"{before:.2f} -> {after:.2f}"}
    return [
        event("eval", {"phase": "baseline", "suite": GUARD, "guard": True,
                       "metrics": {"contains_all": {"value": before, "low": before - 0.1, "high": before + 0.05}},
                       "run": run(before)}),
        event("eval", {"phase": "final", "suite": GUARD, "guard": True,
                       "metrics": {"contains_all": {"value": after, "low": after - 0.1, "high": after + 0.05}},
                       "run": run(after)}),
        event("eval", {"phase": "comparison", "suite": GUARD, "guard": True, "comparison": {"contains_all": metric}}),
    ] + [
        event("warning", {"kind": "regression", "suite": GUARD, "metric": "contains_all", "before": before,
                          "after": after, "difference": after - before, "threshold": 0.05}, level="warn",
              message=f"Regression on guard suite '{GUARD}': contains_all fell from {before:.3f} to {after:.3f}"),
    ] * regressed


def validation_events() -> list[dict]:
    return [event("eval", {"phase": "validation", "step": step, "valid_loss": loss, "valid_mean_token_accuracy": 0.5,
                           "task": {"contains_all": score, "rouge_l": score / 2}})
            for step, loss, score in ((10, 1.5, 0.25), (20, 0.8, 0.5), (30, 0.4, 0.75))]


JUDGE = {"judge": "judge-model", "n": 20, "wins": 12, "losses": 3, "ties": 4, "invalid": 1, "win_rate": 0.71,
         "low": 0.55, "high": 0.86, "consistency": 0.85, "significant": True,
         "summary": "the fine-tuned model's answers were preferred in 12 of 19 cases", "per_case": []}

TOKENS = ["The", " secret", " <b>word</b>"]


def tokens_event(attention: bool = True) -> dict:
    weights = [[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.2, 0.3, 0.5]]
    return event("eval", {
        "phase": "tokens", "suite": "aurora-support-heldout", "case": 2, "prompt": "What is <i>the</i> secret?",
        "reference": "The secret <b>word</b>", "tokens": TOKENS,
        "base_logprobs": [math.log(0.5), math.log(0.1), math.log(0.9)],
        "tuned_logprobs": [math.log(0.8), math.log(0.9), math.log(0.2)],
        "attention": {"tokens": TOKENS, "weights": weights, "layer": 3, "head": 1} if attention else None})


def with_judge(events: list[dict]) -> list[dict]:
    events = copy.deepcopy(events)
    comparison = next(e for e in events if e["kind"] == "eval" and e["data"]["phase"] == "comparison")
    comparison["data"]["judge"] = JUDGE
    return events


def classification_job(demo: dict) -> tuple[dict, list[dict]]:
    """The demo job turned into a 4-case ticket classifier scored by macro_f1."""
    job = copy.deepcopy(demo["job"])
    labels = ["billing", "shipping", "billing", "refund"]
    job["honed"]["eval"] = {"name": "tickets", "metrics": ["macro_f1"],
                            "cases": [{"prompt": f"ticket {i}", "reference": label} for i, label in enumerate(labels)]}
    outputs = {"baseline": ["Shipping.", "shipping", "billing", "hello"], "final": ["Billing", "shipping", "billing", "refund"]}
    scores = {"baseline": 0.5, "final": 1.0}
    events = without_kinds(demo["events"], "eval")
    for phase, answers in outputs.items():
        events.append(event("eval", {"phase": phase, "suite": "tickets", "metrics": {"macro_f1": {"value": scores[phase]}},
                                     "run": {"suite": "tickets", "outputs": answers,
                                             "metrics": {"macro_f1": {"name": "macro_f1", "value": scores[phase]}}}}))
    events.append(event("eval", {"phase": "comparison", "suite": "tickets", "comparison": {"macro_f1": {
        "name": "macro_f1", "before": 0.5, "after": 1.0, "difference": 0.5, "low": None, "high": None,
        "relative_gain": 1.0, "significant": None, "summary": "0.500 -> 1.000"}}}))
    return job, events


def everything(demo: dict) -> tuple[dict, list[dict]]:
    """Every section at once: the sample report, and the page the no-network test reads."""
    job, events = classification_job(demo)
    return job, [*with_judge(events), *validation_events(), *guard_events(), tokens_event()]


def section(html: str, title: str) -> str:
    return html.split(f"<h2>{title}", 1)[1].split("<h2>", 1)[0]


def test_the_full_report_still_makes_no_requests_to_the_network(demo: dict) -> None:
    html = render_job_report(*everything(demo))

    for title in ("Guard suites", "Token-level view", "Confusion matrices"):
        assert f"<h2>{title}" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"url\(\s*[^#\s]", html)


def test_guard_suites_get_their_own_table_and_stay_out_of_the_main_summary(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"] + guard_events(before=0.9, after=0.4))

    summary = html.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    assert "0.00 [0.00, 0.00]" in summary and "0.83 [0.58, 1.00]" in summary
    assert "0.90" not in summary and "0.40" not in summary and GUARD not in summary
    assert "Before / after on <code>aurora-support-heldout</code>" in html
    assert html.count("<svg") == render_job_report(demo["job"], demo["events"]).count("<svg")  # no guard bars
    guards = section(html, "Guard suites").split('<table class="guards">', 1)[1].split("</table>", 1)[0]
    assert GUARD in guards and "contains_all" in guards
    assert "0.90 [0.80, 0.95]" in guards and "0.40 [0.30, 0.45]" in guards
    assert "-0.50 [-0.60, -0.40]" in guards and 'class="drop"' in guards


def test_a_guard_regression_raises_a_red_banner_at_the_top(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"] + guard_events(before=0.9, after=0.4))

    headline = f"Regression: {GUARD} contains_all fell from 0.90 to 0.40"
    top = html.split("<h2>", 1)[0]
    assert f'<div class="banner regression" role="alert">{headline}</div>' in top
    listed = section(html, "Guard suites").split('<ul class="regressions">', 1)[1]
    assert f"{headline} (difference -0.50, threshold 0.05)" in listed
    assert "Regression on guard suite" in section(html, "Warnings")


def test_a_guard_that_held_is_listed_without_alarm(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"] + guard_events(before=0.9, after=0.88, regressed=False))

    guards = section(html, "Guard suites")
    assert "0.90 [0.80, 0.95]" in guards and "0.88 [0.78, 0.93]" in guards
    assert 'class="drop"' not in guards and "regressions" not in guards and 'class="banner' not in html


def test_without_guard_events_there_is_no_guard_section_or_banner(demo: dict) -> None:
    html = render_job_report(demo["job"], demo["events"])

    assert "Guard suites" not in html and 'class="banner' not in html


def test_validation_events_draw_validation_loss_and_the_task_metrics(demo: dict) -> None:
    without = render_job_report(demo["job"], demo["events"])
    html = render_job_report(demo["job"], demo["events"] + validation_events())

    assert html.count("<svg") == without.count("<svg") + 1
    plots = section(html, "Plots").split("<figure>")
    loss = next(p for p in plots if ">Loss<" in p)
    assert ">validation<" in loss and ">training<" in loss
    task = next(p for p in plots if ">Task metric during training<" in p)
    assert ">contains_all<" in task and ">rouge_l<" in task
    assert "Task metric during training" not in without and ">validation<" not in without


def test_validation_points_are_plotted_at_their_steps(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from honed.evaluation import plots

    drawn = {}
    monkeypatch.setattr(plots, "line_plot", lambda title, ylabel, lines: drawn.update({title: lines}))

    render_job_report(demo["job"], demo["events"] + validation_events())

    assert ("validation", [10, 20, 30], [1.5, 0.8, 0.4], "o-") in drawn["Loss"]
    assert drawn["Task metric during training"] == [("contains_all", [10, 20, 30], [0.25, 0.5, 0.75], "o-"),
                                                    ("rouge_l", [10, 20, 30], [0.125, 0.25, 0.375], "o-")]


def test_the_token_view_colours_each_reference_token_by_its_probability(demo: dict) -> None:
    from honed.evaluation.plots import change_colors, probability_colors

    html = render_job_report(demo["job"], demo["events"] + [tokens_event()])

    view = section(html, "Token-level view")
    assert "<h3>Case 3 of <code>aurora-support-heldout</code></h3>" in view
    assert "What is &lt;i&gt;the&lt;/i&gt; secret?" in view
    assert view.count('class="tok" style=') == 3 * 3 + 10  # three rows of three tokens, two legends of five
    assert 'title="base p=0.500, fine-tuned p=0.800 (+0.300)"' in view
    assert 'title="base p=0.900, fine-tuned p=0.200 (-0.700)"' in view
    background, text = probability_colors(0.1)
    assert f'style="background:{background};color:{text}" title="base p=0.100' in view
    assert f'style="background:{change_colors(0.8)[0]}' in view
    assert "base (perplexity 2.81)" in view and "fine-tuned (perplexity 1.91)" in view
    assert "<b>word</b>" not in html and "&lt;b&gt;word&lt;/b&gt;" in view
    assert "Attention, layer 3, head 1" in view and view.count("<svg") == 1
    assert "Token-level view" not in render_job_report(demo["job"], demo["events"])


def test_a_token_view_without_attention_draws_no_map(demo: dict) -> None:
    view = section(render_job_report(demo["job"], demo["events"] + [tokens_event(attention=False)]), "Token-level view")

    assert "<svg" not in view and "perplexity 2.81" in view


def test_a_classifier_gets_base_and_tuned_confusion_matrices(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from honed.evaluation import plots

    drawn = {}
    monkeypatch.setattr(plots, "confusion_matrices", lambda labels, matrices: drawn.update(
        labels=labels, matrices=dict(matrices)) or Markup("<svg>matrices</svg>"))

    html = render_job_report(*classification_job(demo))

    assert "<svg>matrices</svg>" in section(html, "Confusion matrices")
    assert drawn["labels"] == ["billing", "refund", "shipping", "(other)"]
    assert drawn["matrices"]["base"] == [[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert drawn["matrices"]["fine-tuned"] == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_a_label_stated_inside_an_answer_is_what_the_confusion_matrix_counts(demo, monkeypatch) -> None:
    from honed.evaluation import plots

    drawn = {}
    monkeypatch.setattr(plots, "confusion_matrices", lambda labels, matrices: drawn.update(
        labels=labels, matrices=dict(matrices)) or Markup("<svg>matrices</svg>"))
    job, events = classification_job(demo)
    suite = job["honed"]["eval"]
    suite["label_pattern"] = r"Intent: (\w+)"
    for case in suite["cases"]:
        case["reference"] = f"Intent: {case['reference']}\n\nWe can help with that."
    for row in events:
        run = (row.get("data") or {}).get("run")
        if run:
            run["outputs"] = [f"Intent: {o.strip('.').lower()}\n\nSure." if o != "hello" else "hello" for o in run["outputs"]]

    render_job_report(job, events)
    assert drawn["labels"] == ["billing", "refund", "shipping", "(other)"]
    assert drawn["matrices"]["fine-tuned"] == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_confusion_matrices_are_drawn_with_the_labels(demo: dict) -> None:
    figure = section(render_job_report(*classification_job(demo)), "Confusion matrices")

    assert figure.count("<svg") == 1
    assert all(f">{label}<" in figure for label in ("billing", "refund", "shipping", "(other)", "fine-tuned"))


def test_a_suite_without_macro_f1_gets_no_confusion_matrices(demo: dict) -> None:
    assert "Confusion matrices" not in render_job_report(demo["job"], demo["events"])


def test_the_llm_judge_verdict_sits_under_the_summary(demo: dict) -> None:
    html = render_job_report(demo["job"], with_judge(demo["events"]))

    box = section(html, "Before / after").split('<div class="judge">', 1)[1]
    assert "LLM judge (<code>judge-model</code>):" in box and JUDGE["summary"].replace("'", "&#39;") in box
    assert '<dd class="good">0.71 [0.55, 0.86] (significant)</dd>' in box
    assert "12 wins, 3 losses, 4 ties, 1 invalid of 20 cases" in box and "85%" in box
    summary = html.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    assert "judge" not in summary
    assert "LLM judge" not in render_job_report(demo["job"], demo["events"])


def test_model_text_in_figures_is_drawn_as_it_is(demo: dict) -> None:
    data = tokens_event()
    data["data"]["attention"]["tokens"] = ["$x^{", "costs $5", "\n"]

    view = section(render_job_report(demo["job"], demo["events"] + [data]), "Token-level view")

    assert ">$x^{<" in view and ">costs $5<" in view and ">↵<" in view  # no mathtext, no crash
