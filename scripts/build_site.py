"""Build the course site: build/site/ (HTML, offline) from the executed notebooks of `make course`.

Stages site/*.md and site/conf.py with build/notebooks/*.ipynb (the executed notebooks; the stripped ones
from notebooks/ when `make course` has not run, so the site's structure can still be tested) and pages made
from build/results/*.json (notebook times, the claims table, the strategy guide) and build/benchmarks.md into
build/site-src/, then runs Sphinx (myst-nb renders the notebooks' stored outputs, nothing is executed; the furo
theme ships its assets, so no network is needed). Usage: python scripts/build_site.py [--out DIR] [--build DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from learnstrat_helpers.claims import Claim

ROOT = Path(__file__).resolve().parents[1]
TITLES = {"01_transfer_learning": "Transfer learning", "02_bert_fine_tuning": "Fine-tuning BERT",
          "03_multitask_ner_re": "Multitask learning: joint NER and relations",
          "04_federated_learning": "Federated learning"}


def slug(heading: str) -> str:
    """The anchor MyST gives a heading (myst_heading_anchors)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def load_results(build: Path) -> dict[str, dict]:
    return {stem: json.loads(f.read_text()) for stem in TITLES if (f := build / "results" / f"{stem}.json").is_file()}


def claim_line(stem: str, c: dict) -> str:
    return Claim.from_dict(c).table_line(f"[{stem[:2]}]({stem}.ipynb{'#' + slug(c['section']) if c.get('section') else ''})")


def claims_of(results: dict[str, dict], strategy: str, side: str) -> list[str]:
    return [claim_line(stem, c) for stem, r in results.items() for c in r.get("claims", [])
            if c["strategy"] == strategy and c["side"] == side]


def notebooks_table(results: dict[str, dict]) -> str:
    rows = ["| # | notebook | time (s) | peak memory (MB) | claims as expected |", "|---|---|---:|---:|---:|"]
    for stem, title in TITLES.items():
        r = results.get(stem, {})
        claims = r.get("claims", [])
        ok = f"{sum(c['verdict'] == c['expected'] for c in claims)}/{len(claims)}" if claims else "not run"
        wall, rss = (f"{r[k]:.0f}" if k in r else "not run" for k in ("wall_s", "peak_rss_mb"))
        rows.append(f"| {stem[:2]} | [{title}]({stem}.ipynb) | {wall} | {rss} | {ok} |")
    return "\n".join(rows)


def claims_table(results: dict[str, dict]) -> str:
    rows = ["| strategy | strength | limitation |", "|---|---|---|"]
    for strategy in ("transfer learning", "fine-tuning", "multitask learning", "federated learning"):
        cells = ("<br>".join(claims_of(results, strategy, side)) or "not run yet: `make course`"
                 for side in ("strength", "limitation"))
        rows.append(f"| {strategy} | {' | '.join(cells)} |")
    return "\n".join(rows)


def fill_guide(text: str, results: dict[str, dict]) -> str:
    def factor(match: re.Match) -> str:
        lines = [f"- *{pair.strip()}*: {line}" for pair in match.group(1).split(",")
                 for line in claims_of(results, *pair.strip().split("/"))]
        return "\n".join(lines) or "*(no claims recorded yet: run `make course`)*"
    return re.sub(r"<!-- FACTOR: (.*?) -->", factor, text)


def section_times(notebook: Path) -> list[tuple[str, float]]:
    """(level-2 heading, seconds its code cells took) from the run's cell timestamps (nbclient records them)."""
    from datetime import datetime

    sections, current = [], ["(before the first section)", 0.0]
    for cell in json.loads(notebook.read_text())["cells"]:
        heading = re.search(r"^## (.+)$", "".join(cell["source"]), flags=re.M) if cell["cell_type"] == "markdown" else None
        if heading:
            sections.append(tuple(current))
            current = [heading.group(1).strip(), 0.0]
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" in times and "iopub.status.idle" in times:
            began, ended = (datetime.fromisoformat(times[k].replace("Z", "+00:00"))
                            for k in ("iopub.status.busy", "iopub.status.idle"))
            current[1] += (ended - began).total_seconds()
    return [(h, t) for h, t in sections + [tuple(current)] if t > 0 or h != "(before the first section)"]


def sections_page(build: Path) -> str:
    lines = ["# Time per section", "", "Seconds each section's code took in the run these pages show (from the cell",
             "timestamps of the executed notebooks), for planning a session: see also the facilitator's guide.", ""]
    for stem, title in TITLES.items():
        executed = build / "notebooks" / f"{stem}.ipynb"
        lines += [f"## {stem[:2]} {title}", ""]
        if not executed.is_file():
            lines += ["Not run yet: `make course`.", ""]
            continue
        rows = section_times(executed)
        lines += ["| section | seconds |", "|---|---:|"] + [f"| {h} | {t:.0f} |" for h, t in rows]
        lines += [f"| **total** | **{sum(t for _, t in rows):.0f}** |", ""]
    return "\n".join(lines)


def prepare_notebook(notebook: Path) -> None:
    """Badge images live on colab.research.google.com and mybinder.org: the site shows them as plain links, so
    every page loads with no network. Cell attachments (the diagrams) become files beside the page, which
    Sphinx copies (myst-nb does not read attachments)."""
    import base64

    nb = json.loads(notebook.read_text())
    # A stripped notebook has no language_info: without it Pygments lexes "!pip" as plain Python and warns.
    nb["metadata"].setdefault("language_info", {}).update(name="python", pygments_lexer="ipython3")
    for cell in nb["cells"]:
        for name, data in cell.pop("attachments", {}).items():
            value = next(iter(data.values()))   # base64, stored as one string or a list of lines
            (notebook.parent / name).write_bytes(base64.b64decode("".join(value) if isinstance(value, list) else value))
            cell["source"] = "".join(cell["source"]).replace(f"attachment:{name}", name)
        if cell["cell_type"] == "markdown":
            cell["source"] = re.sub(r"\[!\[([^\]]*)\]\([^)]*\)\]\(([^)]*)\)", r"[\1](\2)", "".join(cell["source"]))
    notebook.write_text(json.dumps(nb))


def stage(build: Path, src: Path) -> Path:
    if src.exists():
        shutil.rmtree(src)   # build/site-src is this script's own output
    shutil.copytree(ROOT / "site", src)
    results = load_results(build)
    for stem in TITLES:
        executed = build / "notebooks" / f"{stem}.ipynb"
        shutil.copy(executed if executed.is_file() else ROOT / "notebooks" / f"{stem}.ipynb", src / f"{stem}.ipynb")
        prepare_notebook(src / f"{stem}.ipynb")
    profile = next((r.get("profile") for r in results.values()), None) or "(not run yet)"
    table = build / "benchmarks.md"
    benchmarks = table.read_text() if table.is_file() else (ROOT / "benchmarks" / "README.md").read_text()
    machine = next((line.split(":", 1)[1].strip() for line in benchmarks.splitlines() if line.startswith("- Machine:")),
                   "the machine in the benchmarks table")
    index = (src / "index.md").read_text()
    for marker, value in {"PROFILE": profile, "MACHINE": machine, "NOTEBOOKS": notebooks_table(results),
                          "CLAIMS": claims_table(results)}.items():
        index = index.replace(f"<!-- {marker} -->", value)
    (src / "index.md").write_text(index)
    (src / "which_strategy.md").write_text(fill_guide((src / "which_strategy.md").read_text(), results))
    (src / "benchmarks.md").write_text(benchmarks)
    (src / "sections.md").write_text(sections_page(build))
    seeds = next((f for f in (build / "seeds.md", ROOT / "benchmarks" / "SEEDS.md") if f.is_file()), None)
    (src / "seeds.md").write_text(seeds.read_text() if seeds else
                                  "# Verdicts across seeds\n\nNot run yet: `python benchmarks/run_seeds.py`.\n")
    guide = (ROOT / "FACILITATOR.md").read_text()
    for page, target in {"benchmarks/README.md": "benchmarks.md", "benchmarks/SEEDS.md": "seeds.md"}.items():
        guide = guide.replace(f"]({page})", f"]({target})")
    (src / "facilitator.md").write_text(guide.replace("`build/site/sections.html` after `make course`",
                                                      "[Time per section](sections.md)"))
    return src


def build_site(build: Path, out: Path, src: Path | None = None) -> int:
    """Stage and build; Sphinx's exit status (warnings count as errors: a broken cross-reference fails)."""
    src = stage(build, src or build / "site-src")
    return subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-E",
                           str(src), str(out)]).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="where make course wrote its outputs")
    parser.add_argument("--out", type=Path, default=None, help="site folder (default: <build>/site)")
    args = parser.parse_args()
    out = args.out or args.build / "site"
    if build_site(args.build, out):
        print(f"site build failed (warnings are errors): see above; sources in {args.build / 'site-src'}",
              file=sys.stderr)
        return 1
    print(f"site in {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
