"""Run the course headless and measure it: the benchmark harness behind `make course`.

For each notebook (all of notebooks/*.ipynb, or the ones named), in the profile of LEARNSTRAT_PROFILE:
  - execute it in a fresh kernel (working directory notebooks/), progress bars off;
  - sample the resident memory of the kernel's whole process tree every 0.2 s;
  - write build/notebooks/<stem>.ipynb (executed), build/html/<stem>.html (figures embedded),
    and add wall_s and peak_rss_mb to build/results/<stem>.json (the notebook writes its numbers there);
then write build/benchmarks.md, the table of this run and the machine it ran on, and build/claims.md, the
article's strengths-and-limitations table with this run's verdict, number and interval in each cell. The
committed copies, benchmarks/README.md and benchmarks/CLAIMS.md, are rewritten only with
--update-committed-table (a maintainer's recorded run), so a learner's `make course` leaves the clone clean.
Exit status 1 when a notebook fails, or is over budget with --enforce-budgets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from learnstrat_helpers.claims import Claim

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
COMMITTED_TABLE = ROOT / "benchmarks" / "README.md"
COMMITTED_CLAIMS = ROOT / "benchmarks" / "CLAIMS.md"
STRATEGIES = ("transfer learning", "fine-tuning", "multitask learning", "federated learning")
NOT_NUMBERS = ("wall_s", "peak_rss_mb", "profile", "seed", "claims")
BUDGET_WALL_S = {"03_multitask_ner_re": 480}  # the one notebook allowed more than 5 minutes
DEFAULT_BUDGET_WALL_S = 300
BUDGET_RSS_MB = 1600


class PeakMemory:
    """Polls the summed RSS of this process's children (the kernel and what it starts)."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s, self.peak_bytes, self.window_peak_bytes = interval_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self.window_peak_bytes = max(self.window_peak_bytes, total)
            self._stop.wait(self.interval_s)

    def window_peak_mb(self) -> float:
        """Peak since the last call (one cell's peak, when called as each cell starts and ends)."""
        peak, self.window_peak_bytes = self.window_peak_bytes, 0
        return round(peak / 2**20, 1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = psutil.virtual_memory().total / 2**30
    import torch

    return (f"{cpu}, {psutil.cpu_count()} cores, {memory_gb:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}")


def run_notebook(path: Path, timeout_s: int) -> dict:
    stem = path.stem
    results_dir = BUILD / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results_file = results_dir / f"{stem}.json"
    if results_file.exists():
        results_file.unlink()  # a file the harness itself wrote on an earlier run: start this run clean
    os.environ["LEARNSTRAT_RESULTS_DIR"] = str(results_dir)
    os.environ["LEARNSTRAT_PROGRESS"] = "0"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    error = None
    start = time.perf_counter()
    with PeakMemory() as memory:
        # Each code cell's peak RSS goes into its metadata (learnstrat.peak_rss_mb), to find what to shrink.
        client.on_cell_start = lambda cell, cell_index: memory.window_peak_mb()
        client.on_cell_executed = lambda cell, cell_index, execute_reply: cell.metadata.setdefault(
            "learnstrat", {}).update(peak_rss_mb=memory.window_peak_mb())
        try:
            client.execute()
        except Exception as exc:  # the executed notebook is still written, so the failure can be read
            error = f"{type(exc).__name__}: {str(exc)[-2000:]}"
    wall_s = time.perf_counter() - start
    (BUILD / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, BUILD / "notebooks" / path.name)
    (BUILD / "html").mkdir(parents=True, exist_ok=True)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (BUILD / "html" / f"{stem}.html").write_text(html)
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results.update(wall_s=round(wall_s, 1), peak_rss_mb=round(memory.peak_bytes / 2**20, 1))
    results_file.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return {"stem": stem, "results": results, "error": error}


def over_budget(row: dict) -> list[str]:
    r = row["results"]
    budget_s = BUDGET_WALL_S.get(row["stem"], DEFAULT_BUDGET_WALL_S)
    problems = []
    if r["wall_s"] > budget_s:
        problems.append(f"wall {r['wall_s']:.0f} s > {budget_s} s")
    if r["peak_rss_mb"] > BUDGET_RSS_MB:
        problems.append(f"peak RSS {r['peak_rss_mb']:.0f} MB > {BUDGET_RSS_MB} MB")
    return problems


def write_table(rows: list[dict], profile: str, path: Path) -> Path:
    lines = [
        "# Benchmarks: the latest `make course` run",
        "",
        "Written by `benchmarks/run_course.py` (do not edit by hand; `make course` writes `build/benchmarks.md`,",
        "and this committed copy only with `--update-committed-table`). Budgets per notebook in the default",
        f"profile: wall time <= {DEFAULT_BUDGET_WALL_S} s (03: <= {BUDGET_WALL_S['03_multitask_ner_re']} s), "
        f"peak RSS of the kernel's process tree <= {BUDGET_RSS_MB} MB.",
        "",
        f"- When: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Profile: `{profile}`",
        f"- Machine: {machine_description()}",
        "",
        "| notebook | status | wall (s) | peak RSS (MB) | claims as expected | headline numbers |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        r = row["results"]
        numbers = ", ".join(f"`{k}` {v:.3f}" if isinstance(v, float) else f"`{k}` {v}"
                            for k, v in sorted(r.items()) if k not in NOT_NUMBERS)
        problems = over_budget(row)
        status = "failed" if row["error"] else ("over budget: " + "; ".join(problems) if problems else "ok")
        if row.get("earlier"):
            status += " (earlier run)"
        claims = r.get("claims", [])
        as_expected = f"{sum(c['verdict'] == c['expected'] for c in claims)}/{len(claims)}"
        lines.append(f"| {row['stem']} | {status} | {r['wall_s']:.0f} | {r['peak_rss_mb']:.0f} | {as_expected} "
                     f"| {numbers} |")
    path.write_text("\n".join(lines + cold_start_lines()) + "\n")
    return path


def cold_start_lines(record: Path = ROOT / "benchmarks" / "cold_start.json") -> list[str]:
    """The set-up's cold start (``benchmarks/cold_start.py``): time with an empty pip cache, environment size, and
    what this machine had on disk that a laptop downloads."""
    if not record.is_file():
        return []
    r = json.loads(record.read_text())
    status = "ok" if r["setup_s"] <= r["budget_s"] and r["venv_gb"] <= r["budget_gb"] else "over budget"
    biggest = ", ".join(f"{name} {mb:,} MB" for name, mb in list(r["largest_packages_mb"].items())[:5])
    sources = ", ".join(f"{v['packages']} from {where}" for where, v in r["packages_from"].items() if v["packages"])
    lines = ["", "## Cold start: `make setup` on a fresh clone, empty pip cache", "",
             f"Written from `benchmarks/cold_start.json` (`python benchmarks/cold_start.py`, {r['recorded_at']}, commit "
             f"{r['commit']}, {r['machine']}). Budgets: <= {r['budget_s']} s and <= {r['budget_gb']} GB.", "",
             f"- {status}: set-up {r['setup_s']:.0f} s (earlier runs: "
             f"{', '.join(f'{s:.0f}' for s in r['earlier_setup_s']) or 'none'} s), environment {r['venv_gb']:.2f} GB "
             f"on disk; torch from {r['torch_from']}; the other packages: {sources}",
             f"- Largest packages: {biggest}"]
    local_mb = r["torch_local_wheel_mb"] + r["packages_from"]["local files"]["mb"]
    if local_mb:
        lines.append(f"- Not measured: a laptop downloads what came from local files here ({local_mb:,.0f} MB: "
                     f"torch's wheel {r['torch_local_wheel_mb']} MB, {r['packages_from']['local files']['packages']} "
                     "packages); add its download time.")
    return lines


def _claim_line(stem: str, c: dict, committed: bool) -> str:
    anchor = c.get("section", "").replace(" ", "-")
    page = f"../notebooks/{stem}.ipynb" if committed else f"html/{stem}.html"
    return Claim.from_dict(c).table_line(f"[{stem[:2]}]({page}{'#' + anchor if anchor else ''})")


def write_claims_table(rows: list[dict], profile: str, path: Path, committed: bool = False) -> Path:
    """The article's strengths-and-limitations table, each cell holding this run's claims; links go to the
    executed HTML in build/ (or, in the committed copy, to the notebooks)."""
    cells = {(s, side): [] for s in STRATEGIES for side in ("strength", "limitation", "beyond")}
    for row in rows:
        for c in row["results"].get("claims", []):
            cells.setdefault((c["strategy"], c["side"]), []).append(_claim_line(row["stem"], c, committed))
    seeds = sorted({str(row["results"].get("seed", 0)) for row in rows})
    lines = [
        "# Course claims: the article's strengths and limitations, tested by this run",
        "",
        f"Written by `benchmarks/run_course.py` from `build/results/*.json` (profile `{profile}`, "
        f"LEARNSTRAT_SEED {', '.join(seeds)}, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}). "
        "A verdict is *supported* when the whole 95% interval clears the claim's margin on its side, "
        "*contradicted* when it clears it on the other side, *inconclusive* otherwise. Each link opens the "
        "notebook section that runs the experiment.",
        "",
        "| strategy | strength | limitation |",
        "|---|---|---|",
    ]
    for s in STRATEGIES:
        strength, limitation = ("<br>".join(cells[(s, side)]) or "not run" for side in ("strength", "limitation"))
        lines.append(f"| {s} | {strength} | {limitation} |")
    beyond = [f"- {s}: {line}" for s in STRATEGIES for line in cells[(s, "beyond")]]
    if beyond:
        lines += ["", "## Beyond the article", ""] + beyond
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--enforce-budgets", action="store_true", help="exit 1 when a notebook is over budget")
    parser.add_argument("--no-table", action="store_true", help="write no table at all")
    parser.add_argument("--build", type=Path, default=None, help="output folder (default: build/)")
    parser.add_argument("--update-committed-table", action="store_true",
                        help="write the table to the committed benchmarks/README.md (default: build/benchmarks.md)")
    args = parser.parse_args()
    global BUILD
    BUILD = (args.build or BUILD).resolve()
    profile = os.environ.setdefault("LEARNSTRAT_PROFILE", "default")
    paths = [Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    rows = []
    for path in paths:
        print(f"running {path.name} (profile {profile}) ...", flush=True)
        row = run_notebook(path, args.timeout)
        r = row["results"]
        print(f"  {'FAILED' if row['error'] else 'ok'}: {r['wall_s']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        if row["error"]:
            print(row["error"], file=sys.stderr)
        rows.append(row)
    if not args.no_table:
        # Keep the rows of notebooks not run this time, from their last results file, so a partial run
        # doesn't erase the table.
        ran = {row["stem"] for row in rows}
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            earlier = BUILD / "results" / f"{path.stem}.json"
            if path.stem not in ran and earlier.is_file():
                results = json.loads(earlier.read_text())
                if "wall_s" in results:
                    rows.append({"stem": path.stem, "results": results, "error": None, "earlier": True})
        rows.sort(key=lambda row: row["stem"])
        table = COMMITTED_TABLE if args.update_committed_table else BUILD / "benchmarks.md"
        table.parent.mkdir(parents=True, exist_ok=True)
        print(f"wrote {write_table(rows, profile, table)}")
        print(f"wrote {write_claims_table(rows, profile, BUILD / 'claims.md')}")
        if args.update_committed_table:
            print(f"wrote {write_claims_table(rows, profile, COMMITTED_CLAIMS, committed=True)}")
    print(f"executed notebooks, HTML and results are in {BUILD}/")
    failed = [r["stem"] for r in rows if r["error"]]
    late = [r["stem"] for r in rows if over_budget(r) and not r.get("earlier")]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    if late:
        print(f"over budget: {', '.join(late)}", file=sys.stderr)
    return 1 if failed or (args.enforce_budgets and late) else 0


if __name__ == "__main__":
    sys.exit(main())
