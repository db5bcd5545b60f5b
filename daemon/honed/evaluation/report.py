"""A self-contained HTML report about one fine-tuning job, built from the job and its events.

Everything the page needs is inside it: CSS inline, plots as inline SVG, a few lines of script to sort the
eval cases. It makes no network requests, so it can be mailed, archived or printed as it is.
"""

from __future__ import annotations

import difflib
import io
import re
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from matplotlib import rc_context
from matplotlib.figure import Figure

TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
BASE_COLOR, TUNED_COLOR = "#7f8c8d", "#2e86de"


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


def eval_phase(events: list[dict], phase: str) -> dict | None:
    """The data of the last eval event of `phase` ("baseline", "final" or "comparison"), or None."""
    found = [d for d in events_of(events, "eval") if d.get("phase") == phase]
    return found[-1] if found else None


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of `key` over the rows that have both."""
    points = [(r["step"], r[key]) for r in rows if r.get("step") is not None and r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def svg(fig: Figure) -> Markup:
    """The figure as an <svg> element to inline in HTML: no XML prolog, doctype or RDF metadata."""
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "honed"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)
    # The HTML parser knows the SVG and xlink namespaces; dropping the declarations leaves no URLs in the page.
    text = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text, count=2)
    return Markup(text)  # noqa: S704 - matplotlib's own output, escaped by it


def line_plot(title: str, ylabel: str, lines: list[tuple[str, list[float], list[float], str]]) -> Markup | None:
    """A small line plot over steps; lines are (label, steps, values, style); None when there is nothing to draw."""
    lines = [line for line in lines if line[1]]
    if not lines:
        return None
    # A bare Figure (not pyplot) is never registered globally, so nothing leaks between reports.
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    for label, xs, ys, style in lines:
        ax.plot(xs, ys, style, label=label, markersize=6)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend()
    return svg(fig)


def metric_bars(name: str, baseline: dict | None, final: dict | None) -> Markup | None:
    """Baseline vs fine-tuned value of one metric, with the bootstrap CI as error bars."""
    bars = [(label, m, color) for label, m, color in (("base", baseline, BASE_COLOR), ("fine-tuned", final, TUNED_COLOR)) if m]
    if not bars:
        return None
    fig = Figure(figsize=(3.2, 3.2))
    ax = fig.add_subplot()
    for i, (label, m, color) in enumerate(bars):
        value, low, high = m["value"], m.get("low"), m.get("high")
        err = [[value - low], [high - value]] if low is not None and high is not None else None
        ax.bar(i, value, color=color, yerr=err, capsize=6)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars])
    ax.set(title=name)
    ax.grid(axis="y", alpha=0.3)
    return svg(fig)


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


def case_prompts(job: dict) -> list[str]:
    cases = (((job.get("honed") or {}).get("eval") or {}).get("cases")) or []
    return [c.get("prompt") or ((c.get("messages") or [{}])[-1].get("content") or "") for c in cases]


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
        tone = "drop" if diff is not None and diff < 0 else "gain" if c.get("significant") and diff else ""
        verdict = {True: "significant", False: "not significant"}.get(c.get("significant"), "—")
        rows.append({"name": name, "baseline": with_ci(b.get("value"), b.get("low"), b.get("high")),
                     "final": with_ci(f.get("value"), f.get("low"), f.get("high")),
                     "difference": with_ci(diff, c.get("low"), c.get("high"), sign=True),
                     "relative_gain": percent(c.get("relative_gain")),
                     "verdict": verdict, "tone": tone})
    return rows


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
    compared = eval_phase(events, "comparison")
    result_eval = (((job.get("honed") or {}).get("result") or {}).get("eval")) or {}
    comparison = (compared or {}).get("comparison") or result_eval.get("comparison") or {}
    per_example_metric, cases = case_rows(job, baseline, final)
    plots = [
        line_plot("Loss", "loss", [("training", *series(metrics, "train_loss"), "-"),
                                   ("validation", *series(checkpoints, "valid_loss"), "o")]),
        line_plot("Learning rate", "learning rate", [("learning rate", *series(metrics, "learning_rate"), "-")]),
    ]
    for name in dict.fromkeys([*((baseline or {}).get("metrics") or {}), *((final or {}).get("metrics") or {})]):
        plots.append(metric_bars(name, ((baseline or {}).get("metrics") or {}).get(name),
                                 ((final or {}).get("metrics") or {}).get(name)))
    finished = job.get("finished_at")
    return _ENV.get_template("report.html.j2").render(
        job=job,
        error=(job.get("error") or {}).get("message") if isinstance(job.get("error"), dict) else job.get("error"),
        created=utc(job.get("created_at")), finished=utc(finished),
        duration=duration(finished - job["created_at"] if finished and job.get("created_at") else None),
        suite=(final or baseline or compared or {}).get("suite") or result_eval.get("suite"),
        summary=summary_rows(baseline, final, comparison),
        plots=[p for p in plots if p is not None],
        per_example_metric=per_example_metric, cases=cases,
        cost=cost_benefit(job, metrics, comparison),
        settings=settings(job, events),
        warnings=[e for e in events if e.get("level") in ("warn", "warning", "error")],
        utc=utc,
    )
