"""`make check`: a workshop pre-flight in under 30 s. Checks the Python packages, the models and data the
notebooks load (offline copies or the Hub), free memory, then times a short calibration (MiniLM training steps)
and estimates this machine's time per notebook from the recorded run in benchmarks/README.md.

Usage: python scripts/preflight.py [--record]   (--record: store this machine's calibration as the reference,
next to the recorded benchmark run; only on the machine that ran `make course COURSE_ARGS=--update-committed-table`)
Exit status 1 when something a notebook needs is missing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "calibration.json"
TABLE = ROOT / "benchmarks" / "README.md"
PACKAGES = ("torch", "transformers", "datasets", "sklearn", "scipy", "matplotlib", "peft", "pandas", "tqdm",
            "learnstrat_helpers")
BUDGET_MB = 1600


def check_packages() -> list[str]:
    problems = []
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            print(f"  ok  {name} {getattr(module, '__version__', '')}")
        except Exception as exc:   # an import that fails for any reason is the problem to report
            problems.append(f"package {name}: {type(exc).__name__}: {exc} (make setup installs it)")
    return problems


def check_assets() -> list[str]:
    from learnstrat_helpers import assets

    checks = {
        "text encoder (all-MiniLM-L6-v2)": lambda: assets.resolve_text_model(),
        "EfficientNet-Lite0 weights": assets.resolve_efficientnet_lite0,
        "Fashion-MNIST": lambda: assets.resolve_fashion_mnist_folder() or ("the Hub" if not assets.is_offline()
                                                                          else None),
        "SST-2": lambda: assets.resolve_dataset_folder("sst2", ["train.jsonl", "validation.jsonl"])
        or ("the Hub" if not assets.is_offline() else None),
    }
    problems = []
    for what, find in checks.items():
        try:
            found = find()
        except Exception as exc:
            found, why = None, str(exc).splitlines()[0]
        else:
            why = "offline and no local copy"
        if found:
            print(f"  ok  {what}: {found}")
        else:
            problems.append(f"{what}: {why}")
    return problems


def check_memory() -> list[str]:
    import psutil

    free_mb = psutil.virtual_memory().available / 2**20
    print(f"  {'ok ' if free_mb > BUDGET_MB else 'LOW'} free memory {free_mb:.0f} MB (a notebook peaks <= {BUDGET_MB} MB)")
    return [] if free_mb > BUDGET_MB else [f"only {free_mb:.0f} MB free: close other programs (a notebook needs ~{BUDGET_MB} MB)"]


def calibrate(steps: int = 5) -> float:
    """Seconds per MiniLM training step (batch 16 x 48 tokens): the work that dominates notebooks 02 and 03."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    from learnstrat_helpers import assets

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(assets.resolve_text_model(), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids, labels = torch.randint(1000, 5000, (16, 48)), torch.randint(0, 2, (16,))
    times = []
    for _ in range(steps + 1):   # the first step warms up and is not counted
        began = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - began)
    return sorted(times[1:])[len(times[1:]) // 2]


def recorded_walls() -> dict[str, float]:
    rows = re.findall(r"^\| (\d\d_\w+) \| [^|]* \| (\d+) \|", TABLE.read_text(), flags=re.M) if TABLE.is_file() else []
    return {stem: float(wall) for stem, wall in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="store this machine's calibration as the reference")
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"Python {sys.version.split()[0]}")
    problems = [] if sys.version_info >= (3, 11) else ["Python 3.11 or newer is needed"]
    print("packages:")
    problems += check_packages()
    if problems:   # without the packages nothing below can run
        print("\n".join(["", "NOT READY:"] + [f"- {p}" for p in problems]))
        return 1
    print("models and data:")
    problems += check_assets()
    print("machine:")
    problems += check_memory()
    step_s = calibrate()
    print(f"  calibration: {step_s * 1000:.0f} ms per MiniLM training step")
    if args.record:
        REFERENCE.write_text(json.dumps({"step_s": round(step_s, 4), "table": TABLE.name}, indent=2) + "\n")
        print(f"  recorded as the reference in {REFERENCE.relative_to(ROOT)}")
    elif REFERENCE.is_file():
        factor = step_s / json.loads(REFERENCE.read_text())["step_s"]
        print(f"  this machine is {factor:.2f}x the reference machine's time: estimated time per notebook "
              "(default profile):")
        for stem, wall in recorded_walls().items():
            print(f"    {stem}: about {wall * factor / 60:.1f} min (recorded {wall:.0f} s)")
    print(f"pre-flight took {time.perf_counter() - start:.0f} s")
    if problems:
        print("\n".join(["", "NOT READY:"] + [f"- {p}" for p in problems]))
        return 1
    print("READY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
