"""The helper package stays tiny: <= 2,500 lines and <= 80 public names (benchmarks/package_size.py counts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("package_size", ROOT / "benchmarks" / "package_size.py")
package_size = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package_size)


def test_public_names_are_counted_as_defined_not_imported():
    source = "import os\nfrom x import y\nA = 1\n_b = 2\ndef f(): pass\nclass C: pass\nT: int = 3\n"
    assert package_size.public_names(source) == ["A", "f", "C", "T"]


def test_package_within_its_size_limits():
    assert (package_size.MAX_LINES, package_size.MAX_PUBLIC_NAMES) == (2500, 80), "the course's limits changed"
    size = package_size.measure()
    assert size["modules"], "no modules found"
    assert size["lines"] <= package_size.MAX_LINES, f"{size['lines']} lines > {package_size.MAX_LINES}"
    assert size["public_names"] <= package_size.MAX_PUBLIC_NAMES, (
        f"{size['public_names']} public names > {package_size.MAX_PUBLIC_NAMES}")
