"""The report's drawings: matplotlib figures as inline SVG, and the colour scales its token view shares.

Figures are bare `Figure`s (not pyplot), so nothing is registered globally and reports never leak into each
other. Text from models (tokens, labels) goes into figures with mathtext disabled, and matplotlib's SVG writer
escapes it.
"""

from __future__ import annotations

import io
import re

from markupsafe import Markup
from matplotlib import colormaps, rc_context
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

BASE_COLOR, TUNED_COLOR = "#7f8c8d", "#2e86de"
# Perceptually even and readable for colour-blind readers; "change" is diverging around "no change".
PROBABILITY_MAP, CHANGE_MAP = colormaps["viridis"], colormaps["PiYG"]


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


def label_text(token: str) -> str:
    """A token as a tick label: line breaks and tabs shown as arrows, blanks as a middle dot."""
    text = token.replace("\n", "↵").replace("\t", "→")
    return text if text.strip() else "·" * max(1, len(text))


def _cell_text_color(rgba: tuple[float, ...]) -> str:
    luminance = 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]
    return "#000000" if luminance > 0.45 else "#ffffff"


def probability_colors(probability: float) -> tuple[str, str]:
    """(background, text) colours for a token the model gave this probability (0..1)."""
    rgba = PROBABILITY_MAP(min(max(float(probability), 0.0), 1.0))  # an int would index the colour table
    return to_hex(rgba), _cell_text_color(rgba)


def change_colors(change: float) -> tuple[str, str]:
    """(background, text) colours for a change in probability (-1..1): green more likely, pink less."""
    rgba = CHANGE_MAP((min(max(float(change), -1.0), 1.0) + 1) / 2)
    return to_hex(rgba), _cell_text_color(rgba)


def confusion_matrices(labels: list[str], matrices: list[tuple[str, list[list[int]]]]) -> Markup:
    """Count matrices (rows: reference label, columns: predicted label) side by side, one per (title, matrix)."""
    size = 1.2 + 0.45 * len(labels)
    fig = Figure(figsize=(size * len(matrices), size + 0.4))
    names = [label_text(label) for label in labels]
    for index, (title, matrix) in enumerate(matrices):
        ax = fig.add_subplot(1, len(matrices), index + 1)
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, max(max(row) for row in matrix)))
        top = max(max(row) for row in matrix)
        for r, row in enumerate(matrix):
            for c, count in enumerate(row):
                ax.text(c, r, str(count), ha="center", va="center", fontsize=8, usetex=False, parse_math=False,
                        color="white" if count > top / 2 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names if index == 0 else [""] * len(names), fontsize=8)
        _plain_ticks(ax)
        ax.set(title=title, xlabel="predicted")
        if index == 0:
            ax.set_ylabel("reference")
    fig.tight_layout()
    return svg(fig)


def attention_heatmap(tokens: list[str], weights: list[list[float]], layer: int, head: int) -> Markup:
    """One head's attention (rows: the attending token, columns: the token attended to) with tokens as ticks."""
    size = min(9.0, 3.0 + 0.12 * len(tokens))
    fontsize = 8 if len(tokens) <= 24 else 6
    fig = Figure(figsize=(size + 0.8, size))
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="magma_r", vmin=0.0, vmax=1.0)
    names = [label_text(token) for token in tokens]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(names)), names, fontsize=fontsize)
    _plain_ticks(ax)
    ax.set(title=f"Attention, layer {layer}, head {head}", xlabel="attended to", ylabel="attending token")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return svg(fig)


def _plain_ticks(ax) -> None:
    # Tokens like "$" or "$x$" must not turn into mathtext: model text is drawn as it is.
    for tick in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        tick.set_parse_math(False)
