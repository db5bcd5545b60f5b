"""What each honed process runs on below Python, chosen before torch loads: how OpenMP threads wait, and (in the
worker) the memory allocator.

OpenMP threads that spin while they wait are quick on an idle machine and ruinous on a shared one: beside one
busy program on the 2 cores here, SmolLM2 trained at 4.4 tokens/s with OpenMP's default spinning, 27.8 with a
short spin and 97.6 sleeping (passive); idle, passive costs 15-25 % against spinning. So the worker spins briefly
(GOMP_SPINCOUNT below: as fast as the default when idle) and trains only on the cores other programs leave free
(engines/torch_threads.py), where no spinning thread shares a core; every other process (the API answering
chats, the CLI) sleeps. Elsewhere (macOS: LLVM's OpenMP, not measured) the worker sleeps too.
HONED_OMP_WAIT_POLICY=passive makes the worker sleep everywhere; =default leaves OpenMP's variables
(OMP_WAIT_POLICY, GOMP_SPINCOUNT) to the person.

The worker preloads jemalloc where it is installed: glibc's malloc keeps the freed activations of one training
step in pieces the next step cannot reuse, and the peak resident memory of SmolLM2 LoRA training was 4.1 GB
with it against 2.6 GB with jemalloc, at the same speed. HONED_ALLOCATOR=system keeps glibc's. Under a memory
cap (HONED_WORKER_MEMORY_MB) jemalloc returns freed address space too, which the cap counts.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import sys
from collections.abc import Mapping

WORKER_SPIN_COUNT = "50000"
"""libgomp's spins before a waiting thread sleeps (~0.5 ms; the default is 300000 and PASSIVE is 0). On the
2 cores here it trains as fast as the default when idle."""
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
WAIT_POLICIES = ("auto", "passive", "default")
ALLOCATORS = ("auto", "jemalloc", "system")


def runtime_environment(environ: Mapping[str, str], worker: bool) -> dict[str, str]:
    """`environ` as a honed process should run with it: the worker's or any other process's."""
    env = dict(environ)
    policy = env.get("HONED_OMP_WAIT_POLICY", "auto").strip().lower()
    if policy not in WAIT_POLICIES:
        raise ValueError(f"HONED_OMP_WAIT_POLICY={policy!r} is not one of {', '.join(WAIT_POLICIES)}")
    if policy != "default":
        for name in OPENMP_VARIABLES:
            env.pop(name, None)
        if policy == "auto" and worker and sys.platform.startswith("linux"):  # libgomp's variable, measured there
            env["GOMP_SPINCOUNT"] = WORKER_SPIN_COUNT
        else:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
    if worker:
        env.update(_allocator_preload(env))
    return env


def _allocator_preload(env: Mapping[str, str]) -> dict[str, str]:
    choice = env.get("HONED_ALLOCATOR", "auto").strip().lower()
    if choice not in ALLOCATORS:
        raise ValueError(f"HONED_ALLOCATOR={choice!r} is not one of {', '.join(ALLOCATORS)}")
    preload = env.get("LD_PRELOAD", "")
    if choice != "system" and "jemalloc" not in preload:
        library = jemalloc_library()
        if library is None and choice == "jemalloc":
            raise ValueError("HONED_ALLOCATOR=jemalloc but libjemalloc is not installed "
                             "(Debian/Ubuntu: apt install libjemalloc2)")
        preload = f"{preload} {library or ''}".strip()
    if "jemalloc" not in preload:
        return {}
    preloaded = {"LD_PRELOAD": preload}
    settings = env.get("MALLOC_CONF", "")
    if env.get("HONED_WORKER_MEMORY_MB") and "retain:" not in settings:
        # jemalloc keeps the address space it once mapped (opt.retain) and gives back only the pages, and the
        # cap (RLIMIT_AS) counts address space: after one job ran into the cap, the next could not even map its
        # model's file. Under a cap, freed memory gives back its addresses too.
        preloaded["MALLOC_CONF"] = ",".join(filter(None, (settings, "retain:false")))
    return preloaded


@functools.cache
def jemalloc_library() -> str | None:
    """The installed jemalloc that can be preloaded (Linux only: macOS's allocator is another story). Looked up
    once per process: find_library runs ldconfig, and where jemalloc is missing it tries the C compiler too
    (~120 ms), and every honed command, worker start and probe cache key asks."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("jemalloc")


def worker_allocator(environ: Mapping[str, str]) -> str:
    """'jemalloc' or 'system': what the worker's memory is measured under (part of a memory probe's identity)."""
    return "jemalloc" if "jemalloc" in runtime_environment(environ, worker=True).get("LD_PRELOAD", "") else "system"


def apply_openmp(environ: Mapping[str, str], worker: bool) -> None:
    """Set this process's own OpenMP variables (before torch loads libgomp, which reads them once)."""
    wanted = runtime_environment(environ, worker)
    for name in OPENMP_VARIABLES:
        if name in wanted:
            os.environ[name] = wanted[name]
        else:
            os.environ.pop(name, None)


def reexec_worker_if_needed() -> None:
    """A worker started by hand (not by `honed serve`, which spawns it ready) starts itself again with its
    allocator preloaded: a preload (and the allocator's settings) only take effect when a process starts."""
    wanted = runtime_environment(os.environ, worker=True)
    if any(wanted.get(name, "") != os.environ.get(name, "") for name in ("LD_PRELOAD", "MALLOC_CONF")):
        os.execve(sys.executable, sys.orig_argv, wanted)
