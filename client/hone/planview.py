"""Rich views of the machine (`hone hardware`) and of a job's estimate (`hone jobs estimate`)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hone.types import Estimate, Hardware


def gigabytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f} GB"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def hardware_table(hw: Hardware) -> Table:
    table = Table(title="This machine", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    memory = gigabytes(hw.memory_bytes) + (" (unified: shared with the GPU)" if hw.unified_memory else "")
    rows = [
        ("device", f"{hw.device} ({hw.device_name})"), ("platform", hw.platform), ("cores", str(hw.cpu_cores)),
        ("memory", memory), ("available now", gigabytes(hw.memory_available_bytes)),
        ("GPU memory", gigabytes(hw.accelerator_memory_bytes)),
        ("bf16 / fp16", f"{'yes' if hw.bf16 else 'no'} / {'yes' if hw.fp16 else 'no'}"),
        ("engines", ", ".join(hw.engines) + f" (default: {hw.default_engine})"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def estimate_table(found: Estimate) -> Group:
    table = Table(title=f"Estimate for {found.model} on {found.device} ({found.engine})", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("time", f"{duration(found.total_seconds)}  (training {duration(found.train_seconds)}, "
                          f"evaluation {duration(found.eval_seconds)})")
    table.add_row("peak memory", gigabytes(found.peak_memory_bytes)
                  + (f", GPU {gigabytes(found.device_peak_memory_bytes)}" if found.device_peak_memory_bytes else ""))
    table.add_row("steps", f"{found.steps} ({found.micro_steps} micro-batches, {found.trained_tokens:,} tokens)")
    choices = Table(title="Chosen for this machine", show_header=True, title_justify="left")
    choices.add_column("setting")
    choices.add_column("value")
    choices.add_column("why")
    for choice in found.choices:
        choices.add_row(choice.field, str(choice.value), choice.reason)
    parts = [table] + ([choices] if found.choices else [])
    parts += [Text(f"note: {w}", style="yellow") for w in found.warnings]
    return Group(*parts)
