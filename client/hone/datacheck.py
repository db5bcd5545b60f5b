"""`hone data check`: the dataset quality report drawn for a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hone.types import DatasetReport

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
BAR_WIDTH = 40


def _lines(lines: list[int], count: int) -> str:
    shown = ", ".join(str(n) for n in lines[:8])
    return shown + (f", … ({count - min(len(lines), 8)} more)" if count > min(len(lines), 8) else "")


def print_report(report: DatasetReport, console: Console, source: str) -> None:
    """Counts, a token-length histogram, findings with their lines, and the recommendations."""
    summary = f"[bold]{source}[/]: {report.examples:,} examples"
    if report.validation_examples is not None:
        summary += f", {report.validation_examples:,} validation examples"
    if report.records_with_problems:
        summary += f", [red]{report.records_with_problems:,} with problems[/]"
    console.print(summary + f", {report.mean_turns:.1f} turns on average")
    if report.labels:
        console.print("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(report.labels.items(),
                                                                          key=lambda kv: -kv[1])))
    if report.tokens is not None and report.tokens.histogram:
        t = report.tokens
        console.print(f"tokens per example: min {t.min}, median {t.p50}, p90 {t.p90}, p99 {t.p99}, max {t.max}"
                      f" (max_seq_len {t.max_seq_len}: [{'red' if t.over_max else 'green'}]{t.over_max} over[/])")
        peak = max(t.histogram) or 1
        for index, count in enumerate(t.histogram):
            if count == 0:
                continue
            low, high = t.bin_edges[index], t.bin_edges[index + 1]
            style = "red" if low >= t.max_seq_len else "blue"
            bar = "█" * max(1, round(count / peak * BAR_WIDTH))
            console.print(f"  {low:>6}–{high:<6} [{style}]{bar}[/] {count}", highlight=False)
    if report.findings:
        table = Table("severity", "finding", "lines", "what to do", show_lines=True, expand=True)
        for finding in report.findings:
            table.add_row(f"[{SEVERITY_STYLE.get(finding.severity, '')}]{finding.severity}[/]", finding.message,
                          _lines(finding.lines, finding.count), finding.suggestion)
        console.print(table)
    else:
        console.print("[green]No problems found.[/]")
    for index, advice in enumerate(report.recommendations, start=1):
        console.print(f"{index}. {advice}", highlight=False)
