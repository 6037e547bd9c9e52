"""Are the verdicts the same for every seed? Runs the course (default profile) once per LEARNSTRAT_SEED into
build/seeds/seed-<n>/ (seed 0 can reuse build/ from `make course` with --reuse-build) and writes
build/seeds.md: for every claim its value, interval and verdict per seed, and for every headline number its
range over the seeds (the "expected range" FACILITATOR.md quotes). --update-committed-table also writes
benchmarks/SEEDS.md. Exit status 1 when a verdict differs from its expected one for some seed.

Usage: python benchmarks/run_seeds.py [--seeds 0 1 2] [--reuse-build] [--table-only] [--update-committed-table]
       [notebooks...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
NOT_NUMBERS = ("wall_s", "peak_rss_mb", "profile", "seed", "claims")


def run(seed: int, notebooks: list[str]) -> Path:
    out = BUILD / "seeds" / f"seed-{seed}"
    env = {**os.environ, "LEARNSTRAT_SEED": str(seed), "LEARNSTRAT_PROFILE": os.environ.get("LEARNSTRAT_PROFILE",
                                                                                            "default")}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_course.py"), "--build", str(out), *notebooks],
                   env=env, check=False)
    return out


def load(folder: Path) -> dict[str, dict]:
    return {f.stem: json.loads(f.read_text()) for f in sorted((folder / "results").glob("*.json"))}


def table(by_seed: dict[int, dict[str, dict]]) -> tuple[str, int]:
    seeds = sorted(by_seed)
    lines = ["# Verdicts across seeds", "", f"Written by `benchmarks/run_seeds.py` "
             f"({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}), profile "
             f"`{os.environ.get('LEARNSTRAT_PROFILE', 'default')}`, LEARNSTRAT_SEED {', '.join(map(str, seeds))}.", "",
             "## Claims", "", "| notebook | claim | expected | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|" + "---|" * len(seeds)]
    mismatches = 0
    stems = sorted({stem for results in by_seed.values() for stem in results})
    for stem in stems:
        first = next(by_seed[s][stem] for s in seeds if stem in by_seed[s])
        for i, claim in enumerate(first.get("claims", [])):
            cells = []
            for s in seeds:
                claims = by_seed[s].get(stem, {}).get("claims", [])
                c = claims[i] if i < len(claims) and claims[i]["statement"] == claim["statement"] else None
                if c is None:
                    cells.append("not run")
                    mismatches += 1
                    continue
                mismatches += c["verdict"] != c["expected"]
                mark = "" if c["verdict"] == c["expected"] else " **(differs)**"
                cells.append(f"{c['verdict']}{mark} {c['value']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]")
            lines.append(f"| {stem[:2]} | {claim['statement']} | {claim['expected']} | " + " | ".join(cells) + " |")
    lines += ["", "## Headline numbers: range over the seeds", "", "| notebook | number | min | max | "
              + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|---|---:|---:|" + "---:|" * len(seeds)]
    for stem in stems:
        names = sorted({k for s in seeds for k in by_seed[s].get(stem, {}) if k not in NOT_NUMBERS})
        for name in names:
            values = [by_seed[s].get(stem, {}).get(name) for s in seeds]
            known = [v for v in values if isinstance(v, (int, float))]
            if known:
                lines.append(f"| {stem[:2]} | `{name}` | {min(known):.3f} | {max(known):.3f} | "
                             + " | ".join("" if v is None else f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines) + "\n", mismatches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reuse-build", action="store_true", help="seed 0 from build/ (a `make course` run)")
    parser.add_argument("--update-committed-table", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="run nothing: tabulate the runs already in build/")
    args = parser.parse_args()
    by_seed = {}
    for seed in args.seeds:
        reuse = args.reuse_build and seed == 0 and all(r.get("seed", 0) == 0 for r in load(BUILD).values())
        folder = BUILD / "seeds" / f"seed-{seed}"
        by_seed[seed] = load(BUILD if reuse else folder if args.table_only else run(seed, args.notebooks))
    text, mismatches = table(by_seed)
    (BUILD / "seeds.md").write_text(text)
    if args.update_committed_table:
        (ROOT / "benchmarks" / "SEEDS.md").write_text(text)
    print(text)
    print(f"{mismatches} verdict(s) differ from the expected ones" if mismatches else "every verdict as expected")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
