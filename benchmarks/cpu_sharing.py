"""Training beside the person's own programs: how fast honed's worker trains, and how much it slows them.

Each arm is a real fine-tuning job through a real daemon (train_speed.py's honed arm: SmolLM2-135M LoRA r=16,
batch 8 of real chats), run with the worker's OpenMP waiting `passive` (threads sleep while they wait, all cores)
or `auto` (a short spin, and only the cores other programs leave free: native_runtime.py, torch_threads.py), on
an idle machine and beside one busy program: a pure-Python loop at normal priority that holds one core, as a
build or a browser tab would. The busy program's speed is its loop rate over the whole job against the same loop
run alone first, so "1.00" means honed took nothing from it.

    .venv/bin/python benchmarks/cpu_sharing.py [--steps 8] [--model smollm2|tiny] [--scenarios idle,busy] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import RESULTS, arm_honed, machine, model_dirs  # noqa: E402

BUSY_LOOP = """
import signal, time
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
n, started = 0, time.perf_counter()
while not stop:
    for _ in range(10000):
        n += 1
print(n / (time.perf_counter() - started))
"""


class BusyProgram:
    """One core kept busy at normal priority; `stop()` returns its loop iterations per second."""

    def __enter__(self) -> "BusyProgram":
        self.process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=subprocess.PIPE, text=True)
        return self

    def stop(self) -> float:
        self.process.terminate()
        return float(self.process.communicate(timeout=30)[0])

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def busy_alone(seconds: float) -> float:
    with BusyProgram() as busy:
        time.sleep(seconds)
        return busy.stop()


def run(policy: str, beside_busy: bool, model_dir: Path, steps: int, max_len: int) -> dict:
    os.environ["HONED_OMP_WAIT_POLICY"] = policy  # the daemon (LocalDaemon) inherits it
    if not beside_busy:
        found = arm_honed(model_dir, steps, max_len, score_held_out=False)
        return {"policy": policy, "beside_busy": False, "tokens_per_second": found["tokens_per_second"]}
    with BusyProgram() as busy:
        found = arm_honed(model_dir, steps, max_len, score_held_out=False)
        rate = busy.stop()
    return {"policy": policy, "beside_busy": True, "tokens_per_second": found["tokens_per_second"],
            "busy_rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--scenarios", default="idle,busy", help="idle, busy or both")
    parser.add_argument("--rounds", type=int, default=1, help="each arm this many times, interleaved (this "
                        "shared host's speed drifts by 10 %% over minutes)")
    parser.add_argument("--out", default=str(RESULTS / "cpu_sharing.json"))
    args = parser.parse_args()
    model_dir = model_dirs([args.model])[args.model]
    scenarios = [name == "busy" for name in args.scenarios.split(",")]
    alone = busy_alone(20.0) if True in scenarios else None
    if alone is not None:
        print(f"busy program alone: {alone / 1e6:.2f} M loops/s", flush=True)
    rows = []
    for beside_busy in scenarios:
        for _ in range(args.rounds):
            for policy in ("passive", "auto"):
                print(f"{policy}, {'beside a busy program' if beside_busy else 'idle machine'} ...", flush=True)
                row = run(policy, beside_busy, model_dir, args.steps, args.max_len)
                if beside_busy:
                    row["busy_speed"] = row["busy_rate"] / alone
                rows.append(row)
                busy = f", busy program at {row['busy_speed']:.2f}x its speed alone" if beside_busy else ""
                print(f"  {row['tokens_per_second']:.1f} tokens/s{busy}", flush=True)
    for beside_busy in scenarios:
        passive, auto = ([r["tokens_per_second"] for r in rows if r["policy"] == p and r["beside_busy"] == beside_busy]
                         for p in ("passive", "auto"))
        print(f"{'beside a busy program' if beside_busy else 'idle machine'}: auto/passive "
              f"{sum(auto) / sum(passive):.2f}x tokens/s over {len(auto)} round(s)")
    out = Path(args.out)
    out.write_text(json.dumps({"machine": machine(), "model": args.model, "steps": args.steps,
                               "busy_alone_rate": alone, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
