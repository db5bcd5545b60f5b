"""The HTML job report, rendered from a real SmolLM2 job's events and from hand-made edge cases."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

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
