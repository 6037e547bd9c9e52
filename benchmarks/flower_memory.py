"""How much memory and time a local Flower deployment of the bank app takes: the reason notebook 04 does not run it.

    python benchmarks/flower_memory.py [--rounds 2] [--out benchmarks/flower_memory.json]

Runs ``apps/flower_bank/launch.py --rounds N`` (a SuperLink, four SuperNodes, ``flwr run``; everything on
127.0.0.1, stopped at the end) and samples, every 0.3 s, the memory of every process it started: found by their
FLWR_HOME, which lies in a temporary folder made for this run. Two sums: RSS counts pages that processes share
(Python's and torch's libraries) once per process, as the benchmark table's "peak RSS of the kernel's process
tree" does; PSS (proportional set size) splits each shared page between the processes that share it, so its sum
is what the processes take from the machine together. The per-program peaks say where it goes. Notebook 04's budget is 1.6 GB for the whole
kernel tree, Binder's limit 2 GB for the whole session. Section "Part 3: the same strategy on Flower" cites it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_course import machine_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kind(proc: psutil.Process) -> str:
    """A process's program: ``flower-supernode``, ``flwr-clientapp``... (the script name, not the interpreter)."""
    words = [Path(w).name for w in proc.cmdline()[:3]]
    return next((w for w in words if w.startswith(("flower", "flwr", "launch"))), words[0] if words else "?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "flower_memory.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flower-memory-") as tmp:
        env = {**os.environ, "TMPDIR": tmp, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
        start = time.monotonic()
        launcher = subprocess.Popen([sys.executable, str(ROOT / "apps" / "flower_bank" / "launch.py"), "--rounds",
                                     str(args.rounds)], env=env, stdout=subprocess.PIPE, text=True)
        peak, peak_by_kind, most_processes, peak_pss = 0.0, collections.Counter(), 0, 0.0
        while launcher.poll() is None:
            total, by_kind, count, pss = 0.0, collections.Counter(), 0, 0.0
            for proc in psutil.process_iter():
                try:
                    if proc.pid != launcher.pid and not proc.environ().get("FLWR_HOME", "").startswith(tmp):
                        continue
                    memory = proc.memory_full_info()
                    rss, pss = memory.rss / 2**20, pss + memory.pss / 2**20
                    total, count = total + rss, count + 1
                    by_kind[kind(proc)] += rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            most_processes, peak_pss = max(most_processes, count), max(peak_pss, pss)
            if total > peak:
                peak, peak_by_kind = total, by_kind
            time.sleep(0.3)
        wall = time.monotonic() - start
        output = launcher.stdout.read()
    if launcher.returncode != 0:
        print(output, file=sys.stderr)
        return 1
    result = json.loads(output[output.index("{"):])
    record = {"recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
              "rounds": args.rounds, "n_banks": result["n_banks"], "wall_s": round(wall, 1),
              "roc_auc": result["roc_auc"], "most_processes_at_once": most_processes,
              "peak_rss_sum_mb": round(peak), "peak_pss_sum_mb": round(peak_pss), "at_peak_by_program_mb": {k: round(v) for k, v in peak_by_kind.most_common()}}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.rounds} rounds in {wall:.0f} s; summed over the deployment's processes ({most_processes} at most, "
          f"the launcher included), peak RSS {peak:,.0f} MB, peak PSS {peak_pss:,.0f} MB: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
