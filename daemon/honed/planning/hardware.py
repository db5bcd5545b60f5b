"""What this machine trains on: device, memory, cores, and which float formats it computes fast."""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import subprocess
from pathlib import Path

from hone.types import Hardware


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _sysctl(name: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return int(_sysctl("hw.memsize") or 0)


def memory_available_bytes() -> int | None:
    """RAM that can be had without swapping (Linux MemAvailable; psutil elsewhere, when installed)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()


def cpu_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def installed_engines() -> list[str]:
    engines = ["torch"]
    if importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None:
        engines.append("mlx")
    return engines


def detect() -> Hardware:
    """The machine now: its fixed facts (read once per process) and the memory free at this moment."""
    import msgspec

    return msgspec.structs.replace(_fixed(), memory_available_bytes=memory_available_bytes())


@functools.cache
def _fixed() -> Hardware:
    """The machine as PyTorch (and MLX, on a Mac) see it."""
    import torch

    from honed.engines import default_engine_name

    engine = default_engine_name()
    memory = _memory_bytes()
    common = dict(object="hardware", platform=f"{platform.system()} {platform.machine()}", cpu_cores=cpu_cores(),
                  memory_bytes=memory, memory_available_bytes=None,
                  engines=installed_engines(), default_engine=engine)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Hardware(device="cuda", device_name=props.name, unified_memory=False,
                        accelerator_memory_bytes=int(props.total_memory), bf16=torch.cuda.is_bf16_supported(),
                        fp16=True, **common)
    if apple_silicon() and (engine == "mlx" or torch.backends.mps.is_available()):
        # M1 computes bf16 by emulation; every M-series chip has fast fp16
        bf16 = _sysctl("hw.optional.arm.FEAT_BF16") == "1"
        return Hardware(device="metal" if engine == "mlx" else "mps", device_name=_cpu_name(), unified_memory=True,
                        accelerator_memory_bytes=None, bf16=bf16, fp16=True, **common)
    flags = _cpu_flags()
    return Hardware(device="cpu", device_name=_cpu_name(), unified_memory=False, accelerator_memory_bytes=None,
                    bf16=bool(flags & {"avx512_bf16", "amx_bf16"}), fp16=bool(flags & {"avx512_fp16", "amx_fp16"}),
                    **common)


def training_memory_budget(hardware: Hardware) -> int:
    """Bytes a job may plan to use: most of a GPU's memory; on shared RAM, what is free now less headroom so
    the person's own programs keep working (honed runs in the background)."""
    if hardware.accelerator_memory_bytes:
        return int(hardware.accelerator_memory_bytes * 0.9)
    free = hardware.memory_available_bytes or hardware.memory_bytes // 2
    return int(min(free * 0.8, hardware.memory_bytes * 0.7))
