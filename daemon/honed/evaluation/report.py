"""A self-contained HTML report about one fine-tuning job, built from the job and its events.

Everything the page needs is inside it: CSS inline, plots as inline SVG, a few lines of script to sort the
eval cases. It makes no network requests, so it can be mailed, archived or printed as it is.
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from honed.evaluation import plots
from honed.evaluation.metrics import confusion_matrix, extract_labels, perplexity
from honed.evaluation.suite import higher_is_better

TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)


def fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:+.1f}%"


def with_ci(value: float | None, low: float | None, high: float | None, sign: bool = False) -> str:
    text = fmt(value, sign=sign)
    if low is not None and high is not None:
        text += f" [{fmt(low, sign=sign)}, {fmt(high, sign=sign)}]"
    return text


def utc(timestamp: int | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def events_of(events: list[dict], kind: str) -> list[dict]:
    return [e.get("data") or {} for e in events if e.get("kind") == kind]


def eval_data(events: list[dict], phase: str, guard: bool = False) -> list[dict]:
    """The data of every eval event of `phase`: of the job's own suite, or with `guard` of its guard suites."""
    return [d for d in events_of(events, "eval") if d.get("phase") == phase and bool(d.get("guard")) == guard]


def eval_phase(events: list[dict], phase: str) -> dict | None:
    """The data of the job's own suite's last eval event of `phase` ("baseline", "final" or "comparison"), or
    None. Guard suites' events carry "guard": true and are never it."""
    found = eval_data(events, phase)
    return found[-1] if found else None


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of `key` over the rows that have both."""
    points = [(r["step"], r[key]) for r in rows if r.get("step") is not None and r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def word_diff(before: str, after: str) -> tuple[Markup, Markup]:
    """Both texts as escaped HTML: words only in `before` in <del>, words only in `after` in <ins>."""
    old, new = re.findall(r"\S+\s*", before), re.findall(r"\S+\s*", after)
    matcher = difflib.SequenceMatcher(a=[w.strip() for w in old], b=[w.strip() for w in new], autojunk=False)

    def mark(words: list[str], tag: str) -> Markup:
        text = "".join(words)
        core = text.rstrip()
        return Markup(f"<{tag}>{escape(core)}</{tag}>{escape(text[len(core):])}") if core else Markup("")

    left, right = Markup(""), Markup("")
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left += escape("".join(old[i1:i2]))
            right += escape("".join(new[j1:j2]))
        else:
            left += mark(old[i1:i2], "del")
            right += mark(new[j1:j2], "ins")
    return left, right


def suite_cases(job: dict) -> list[dict]:
    """The eval suite's cases as stored in the job's spec (a dataset's cases are copied in at creation)."""
    return (((job.get("honed") or {}).get("eval") or {}).get("cases")) or []


def case_prompts(job: dict) -> list[str]:
    return [c.get("prompt") or ((c.get("messages") or [{}])[-1].get("content") or "") for c in suite_cases(job)]


def case_rows(job: dict, baseline: dict | None, final: dict | None) -> tuple[str | None, list[dict]]:
    """(per-example metric used, one row per eval case) pairing the base and fine-tuned outputs."""
    if not (baseline and final and baseline.get("run") and final.get("run")):
        return None, []
    before_run, after_run = baseline["run"], final["run"]
    metric = next(
        (n for n, m in after_run["metrics"].items()
         if m.get("per_example") and (before_run["metrics"].get(n) or {}).get("per_example")),
        None,
    )
    before_scores = before_run["metrics"][metric]["per_example"] if metric else []
    after_scores = after_run["metrics"][metric]["per_example"] if metric else []
    prompts = case_prompts(job)
    rows = []
    for i, (old, new) in enumerate(zip(before_run["outputs"], after_run["outputs"])):
        left, right = word_diff(old, new)
        before = before_scores[i] if i < len(before_scores) else None
        after = after_scores[i] if i < len(after_scores) else None
        delta = after - before if before is not None and after is not None else None
        rows.append({"number": i + 1, "prompt": prompts[i] if i < len(prompts) else "", "base": left,
                     "tuned": right, "before": fmt(before), "after": fmt(after), "delta": delta or 0.0})
    return metric, rows


def summary_rows(baseline: dict | None, final: dict | None, comparison: dict) -> list[dict]:
    names = list(dict.fromkeys([*comparison, *((final or {}).get("metrics") or {}), *((baseline or {}).get("metrics") or {})]))
    rows = []
    for name in names:
        b = ((baseline or {}).get("metrics") or {}).get(name) or {}
        f = ((final or {}).get("metrics") or {}).get(name) or {}
        c = comparison.get(name) or {}
        diff = c.get("difference")
        better = diff if diff is None or higher_is_better(name) else -diff  # perplexity improves as it falls
        tone = "drop" if better is not None and better < 0 else "gain" if c.get("significant") and better else ""
        verdict = {True: "significant", False: "not significant"}.get(c.get("significant"), "—")
        rows.append({"name": name, "baseline": with_ci(b.get("value"), b.get("low"), b.get("high")),
                     "final": with_ci(f.get("value"), f.get("low"), f.get("high")),
                     "difference": with_ci(diff, c.get("low"), c.get("high"), sign=True),
                     "relative_gain": percent(c.get("relative_gain")),
                     "verdict": verdict, "tone": tone})
    return rows


def guard_rows(events: list[dict], regressed: list[dict]) -> list[dict]:
    """Before / after rows (as summary_rows) of every guard suite's metrics, each naming its suite. Only the
    metrics the worker flagged in `regressed` are toned (red): whether a change is a regression depends on
    the metric's direction and the job's threshold, which the worker has already applied."""
    flagged = {(r.get("suite"), r.get("metric")) for r in regressed}
    by_suite: dict[str, dict[str, dict]] = {}
    for data in events_of(events, "eval"):
        if data.get("guard") and data.get("phase") in ("baseline", "final", "comparison"):
            by_suite.setdefault(data.get("suite") or "—", {})[data["phase"]] = data  # the last of each phase
    return [{**row, "suite": suite, "tone": "drop" if (suite, row["name"]) in flagged else ""}
            for suite, phases in by_suite.items()
            for row in summary_rows(phases.get("baseline"), phases.get("final"),
                                    (phases.get("comparison") or {}).get("comparison") or {})]


def regressions(events: list[dict]) -> list[dict]:
    """The guard regressions the worker warned about, each with a one-line headline."""
    found = []
    for data in events_of(events, "warning"):
        if data.get("kind") != "regression":
            continue
        before, after = data.get("before"), data.get("after")
        verb = "rose" if before is not None and after is not None and after > before else "fell"
        found.append({**data, "headline": f"Regression: {data.get('suite')} {data.get('metric')} {verb} from "
                                          f"{fmt(before)} to {fmt(after)}",
                      "detail": f"difference {fmt(data.get('difference'), sign=True)}, threshold "
                                f"{fmt(data.get('threshold'))}"})
    return found


def judge_verdict(judge: dict | None) -> dict | None:
    """The LLM judge's pairwise preference for the tuned model's answers, formatted for the report."""
    if not judge:
        return None
    rate, significant = judge.get("win_rate"), judge.get("significant")
    consistency = judge.get("consistency")
    return {"judge": judge.get("judge"), "summary": judge.get("summary") or "",
            "win_rate": with_ci(rate, judge.get("low"), judge.get("high")),
            "counts": ", ".join(f"{judge.get(k, 0)} {k}" for k in ("wins", "losses", "ties", "invalid"))
                      + f" of {judge.get('n', 0)} cases",
            "consistency": "—" if consistency is None else f"{100 * consistency:.0f}%",
            "verdict": {True: "significant", False: "not significant"}.get(significant, "—"),
            "tone": "" if not significant or rate is None else "good" if rate > 0.5 else "bad"}


def confusion_plot(job: dict, baseline: dict | None, final: dict | None) -> Markup | None:
    """Base and tuned confusion matrices side by side, for a classification suite (one scored by macro_f1)."""
    runs = [(title, d["run"]) for title, d in (("base", baseline), ("fine-tuned", final)) if d and d.get("run")]
    if not runs or not any("macro_f1" in ((d or {}).get("metrics") or {}) for d in (baseline, final)):
        return None
    references = [c.get("reference") for c in suite_cases(job)]
    pattern = ((job.get("honed") or {}).get("eval") or {}).get("label_pattern")
    if pattern:  # the label stated inside a longer answer, as the metrics scored it
        references = [None if r is None else extract_labels([r], pattern)[0] for r in references]
    computed = []
    for title, run in runs:
        outputs = extract_labels(run["outputs"], pattern) if pattern else run["outputs"]
        pairs = [(out, ref) for out, ref in zip(outputs, references) if ref is not None]
        if len(run["outputs"]) != len(references) or not pairs:
            return None  # the stored spec does not describe these outputs: no honest matrix to draw
        computed.append((title, *confusion_matrix([p[0] for p in pairs], [p[1] for p in pairs])))
    # Both use the references' labels; the one that needed an "(other)" column has them all.
    labels = max((names for _, names, _ in computed), key=len)
    return plots.confusion_matrices(labels, [
        (title, [[m[names.index(r)][names.index(c)] if r in names and c in names else 0 for c in labels]
                 for r in labels]) for title, names, m in computed])


def token_views(events: list[dict]) -> list[dict]:
    """Per token of each inspected reference: its text and colours for base, tuned and the change between."""
    views = []
    for data in eval_data(events, "tokens"):
        base, tuned = data.get("base_logprobs") or [], data.get("tuned_logprobs") or []
        cells = []
        for text, old, new in zip(data.get("tokens") or [], base, tuned):
            before, after = math.exp(old), math.exp(new)
            cells.append({"text": text.replace("\n", "↵\n"), "base": plots.probability_colors(before),
                          "tuned": plots.probability_colors(after),
                          "change": plots.change_colors(after - before),
                          "title": f"base p={before:.3f}, fine-tuned p={after:.3f} ({after - before:+.3f})"})
        attention = data.get("attention")
        views.append({"suite": data.get("suite"), "case": (data.get("case") or 0) + 1,
                      "prompt": data.get("prompt") or "", "cells": cells,
                      "perplexity": [fmt(perplexity([lps])) if lps else "—" for lps in (base, tuned)],
                      "attention": plots.attention_heatmap(attention["tokens"], attention["weights"],
                                                           attention["layer"], attention["head"])
                      if attention else None})
    return views


TOKEN_LEGENDS = {
    "probability": [(f"{p:.2f}", *plots.probability_colors(p)) for p in (0, 0.25, 0.5, 0.75, 1)],
    "change": [(f"{d:+.1f}", *plots.change_colors(d)) for d in (-1, -0.5, 0, 0.5, 1)],
}


def cost_benefit(job: dict, metrics: list[dict], comparison: dict) -> dict:
    minutes = metrics[-1]["elapsed_s"] / 60 if metrics and metrics[-1].get("elapsed_s") else None
    tokens = job.get("trained_tokens") or (metrics[-1].get("trained_tokens") if metrics else None)
    speeds = [m["tokens_per_second"] for m in metrics if m.get("tokens_per_second") is not None]
    gains = [{"name": name, "difference": fmt(c.get("difference"), sign=True),
              "per_minute": f"{c['difference'] / minutes:+.3g}" if minutes else "—",
              "per_1k_tokens": f"{c['difference'] * 1000 / tokens:+.3g}" if tokens else "—"}
             for name, c in comparison.items() if c.get("difference") is not None]
    return {"minutes": fmt(minutes, 1), "tokens": f"{tokens:,}" if tokens else "—",
            "tokens_per_second": fmt(statistics.median(speeds), 1) if speeds else "—", "gains": gains}


def settings(job: dict, events: list[dict]) -> list[tuple[str, Any]]:
    honed, hyper = job.get("honed") or {}, job.get("hyperparameters") or {}
    env = next((d for d in events_of(events, "log") if "device" in d), {})
    params = env.get("trainable_parameters"), env.get("total_parameters")
    rows = [("epochs", hyper.get("n_epochs")), ("batch size", hyper.get("batch_size")),
            ("learning rate", honed.get("learning_rate")),
            ("learning rate multiplier", hyper.get("learning_rate_multiplier")),
            ("adapter", honed.get("adapter")), ("LoRA rank", honed.get("lora_rank")),
            ("LoRA alpha", honed.get("lora_alpha")), ("LoRA dropout", honed.get("lora_dropout")),
            ("max sequence length", honed.get("max_seq_len")), ("seed", job.get("seed")),
            ("engine", ((honed.get("result") or {}).get("engine")) or honed.get("engine")),
            ("device", env.get("device")),
            ("trainable / total parameters",
             f"{params[0]:,} / {params[1]:,} ({100 * params[0] / params[1]:.2f}%)" if all(params) else None)]
    return [(label, "—" if value is None else value) for label, value in rows]


def render_job_report(job: dict, events: list[dict]) -> str:
    """A self-contained HTML page (inline CSS, plots as inline SVG, no external requests) about one job.

    `job` is a FineTuningJob and `events` its JobEvents (oldest first), both as plain dicts. Any part the
    events don't cover (no eval, no checkpoints, a failed job) is left out or said to be missing.
    """
    metrics, checkpoints = events_of(events, "metrics"), events_of(events, "checkpoint")
    baseline, final = eval_phase(events, "baseline"), eval_phase(events, "final")
    compared = eval_phase(events, "comparison") or {}
    result_eval = (((job.get("honed") or {}).get("result") or {}).get("eval")) or {}
    comparison = compared.get("comparison") or result_eval.get("comparison") or {}
    per_example_metric, cases = case_rows(job, baseline, final)
    # Validation points come from the periodic validation events; older jobs only have them on checkpoints.
    validation = eval_data(events, "validation")
    valid_loss = series(validation, "valid_loss")
    if not valid_loss[0]:
        valid_loss = series(checkpoints, "valid_loss")
    task = [{"step": d.get("step"), **(d.get("task") or {})} for d in validation]
    task_names = dict.fromkeys(name for d in validation for name in d.get("task") or {})
    figures = [
        plots.line_plot("Loss", "loss", [("training", *series(metrics, "train_loss"), "-"),
                                         ("validation", *valid_loss, "o-")]),
        plots.line_plot("Task metric during training", "score", [(n, *series(task, n), "o-") for n in task_names]),
        plots.line_plot("Learning rate", "learning rate", [("learning rate", *series(metrics, "learning_rate"), "-")]),
    ]
    for name in dict.fromkeys([*((baseline or {}).get("metrics") or {}), *((final or {}).get("metrics") or {})]):
        figures.append(plots.metric_bars(name, ((baseline or {}).get("metrics") or {}).get(name),
                                        ((final or {}).get("metrics") or {}).get(name)))
    warned = regressions(events)
    finished = job.get("finished_at")
    return _ENV.get_template("report.html.j2").render(
        job=job,
        error=(job.get("error") or {}).get("message") if isinstance(job.get("error"), dict) else job.get("error"),
        created=utc(job.get("created_at")), finished=utc(finished),
        duration=duration(finished - job["created_at"] if finished and job.get("created_at") else None),
        suite=(final or baseline or compared).get("suite") or result_eval.get("suite"),
        summary=summary_rows(baseline, final, comparison),
        judge=judge_verdict(compared.get("judge") or result_eval.get("judge")),
        regressions=warned, guards=guard_rows(events, warned),
        plots=[p for p in figures if p is not None],
        confusion=confusion_plot(job, baseline, final),
        token_views=token_views(events), legends=TOKEN_LEGENDS,
        per_example_metric=per_example_metric, cases=cases,
        cost=cost_benefit(job, metrics, comparison),
        settings=settings(job, events),
        warnings=[e for e in events if e.get("level") in ("warn", "warning", "error")],
        utc=utc,
    )
