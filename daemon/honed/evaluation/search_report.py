"""A search's page: every trial with its values and outcome, the best one, which parameters mattered, and the
metric over the trials drawn (pruned trials where they were stopped, the best so far as a line)."""

from __future__ import annotations

from markupsafe import Markup
from matplotlib.figure import Figure

from honed.evaluation import plots
from honed.evaluation.report import _ENV, utc

STATE_STYLE = {"complete": ("o", plots.TUNED_COLOR), "pruned": ("x", "#c62828"), "failed": ("s", "#6e6e73")}


def trials_plot(metric: str, minimize: bool, trials: list[dict]) -> Markup | None:
    """Left: each trial's metric (a pruned one at the value it was stopped on) and the best so far. Right: the
    validation curves the pruner compared, one per trial."""
    scored = [t for t in trials if t.get("value") is not None]
    if not scored:
        return None
    fig = Figure(figsize=(9.6, 3.4))
    ax, curves = fig.subplots(1, 2)
    for state, (marker, color) in STATE_STYLE.items():
        chosen = [t for t in scored if t["state"] == state]
        if chosen:
            ax.plot([t["number"] for t in chosen], [t["value"] for t in chosen], marker, color=color,
                    linestyle="none", label=state, markersize=7)
    best, xs, ys = None, [], []
    for t in sorted((t for t in scored if t["state"] == "complete"), key=lambda t: t["number"]):
        if best is None or (t["value"] < best if minimize else t["value"] > best):
            best = t["value"]
        xs.append(t["number"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color=plots.BASE_COLOR, label="best so far")
    ax.set(title=f"{metric} per trial", xlabel="trial", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend()
    for t in trials:
        curve = t.get("curve") or {}
        if curve:
            steps = sorted(curve, key=int)
            style = "--" if t["state"] == "pruned" else "-"
            curves.plot([int(s) for s in steps], [curve[s] for s in steps], style, marker=".",
                        label=f"trial {t['number']}")
    curves.set(title="validation points", xlabel="step", ylabel=metric)
    curves.grid(alpha=0.3)
    if any(t.get("curve") for t in trials):
        curves.legend(fontsize="small")
    return plots.svg(fig)


def render_search_report(search: dict, result: dict) -> str:
    """`search` is a Search as plain data; `result` the row's stored result (which also has each trial's
    validation curve)."""
    minimize = search["direction"] == "minimize"
    importance = sorted((search.get("importance") or {}).items(), key=lambda kv: -kv[1])
    return _ENV.get_template("search.html.j2").render(
        search=search, created=utc(search.get("created_at")), finished=utc(search.get("finished_at")),
        plot=trials_plot(search["metric"], minimize, result.get("trials") or []), importance=importance,
        params=list(search.get("space") or {}),
    )
