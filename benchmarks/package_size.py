"""Size of the helper package: lines and public names of every module, against the course's limits.

A public name is a module-level function, class or assigned name that does not start with ``_``
(imports are not counted: they are other modules' names). Run: ``python benchmarks/package_size.py``;
``--json PATH`` also writes the numbers. tests/test_package_size.py enforces the limits.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "learnstrat_helpers"
MAX_LINES = 2500
MAX_PUBLIC_NAMES = 80


def public_names(source: str) -> list[str]:
    """Module-level public names defined by ``source`` (def, class, assignment), in order."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def measure(package: Path = PACKAGE) -> dict:
    """Per module: lines and public names; and the totals."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        modules[str(path.relative_to(package))] = {"lines": len(text.splitlines()), "public": public_names(text)}
    return {"modules": modules,
            "lines": sum(m["lines"] for m in modules.values()),
            "public_names": sum(len(m["public"]) for m in modules.values()),
            "max_lines": MAX_LINES, "max_public_names": MAX_PUBLIC_NAMES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    size = measure()
    for name, m in size["modules"].items():
        print(f"{name:18s} {m['lines']:5d} lines {len(m['public']):3d} public: {', '.join(m['public'])}")
    print(f"{'total':18s} {size['lines']:5d} lines {size['public_names']:3d} public "
          f"(limits {MAX_LINES} lines, {MAX_PUBLIC_NAMES} names)")
    if args.json:
        args.json.write_text(json.dumps(size, indent=1))


if __name__ == "__main__":
    main()
