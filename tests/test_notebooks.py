"""The notebooks' shape: stripped outputs, badges and set-up from the one repository URL, exercises with
checks, a claims cell. (Whether they *run* is nbval's job in `make test`.)"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
GITHUB_PATH = REPO_URL.removeprefix("https://github.com/")


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    assert NOTEBOOKS[0].name == "01_transfer_learning.ipynb"


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_stored_without_outputs(notebook):
    path, nb = notebook
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs; strip them (see README)"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_badges_and_setup_use_the_one_repository_url(notebook):
    path, nb = notebook
    top = nb.cells[0].source
    assert f"colab.research.google.com/github/{GITHUB_PATH}/blob/main/notebooks/{path.name}" in top
    assert f"mybinder.org/v2/gh/{GITHUB_PATH}/main?labpath=notebooks%2F{path.name}" in top
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in setup and f"git+{REPO_URL}" in setup, "the first code cell installs from the repo URL on Colab only"


def test_readme_has_badges_for_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"colab.research.google.com/github/{GITHUB_PATH}/blob/main/notebooks/{path.name}" in readme
        assert f"mybinder.org/v2/gh/{GITHUB_PATH}/main?labpath=notebooks%2F{path.name}" in readme


def test_exercises_have_answers_solutions_and_checks(notebook):
    path, nb = notebook
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    answers = sorted(set(re.findall(r"^(answer_\d+) = None", "\n".join(sources), flags=re.M)))
    assert len(answers) >= 3, f"{path.name}: at least 3 exercises, found {answers}"
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= len(answers)
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions), "solutions start collapsed"
    checks = [c.source for c in nb.cells if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])]
    for name in answers:
        assert any(re.search(rf"^assert .*{name}", s, flags=re.M) for s in checks), f"{path.name}: no check cell for {name}"


def test_ends_with_claims_vs_evidence(notebook):
    path, nb = notebook
    headings = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any(h.startswith("## Claims vs evidence") for h in headings)
    assert any("check_claims(" in c.source for c in nb.cells if c.cell_type == "code")
    assert any("Results(" in c.source for c in nb.cells if c.cell_type == "code")


def test_no_star_imports_or_hidden_globals(notebook):
    path, nb = notebook
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import *" not in code


def test_01_teaches_how_a_claim_is_decided_and_how_settings_were_chosen():
    # claims.py's docstrings point learners to this section; every setting's split is stated in the note.
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("#")]
    assert "## Claims vs evidence: how a claim is decided" in headings
    assert "### How these settings were chosen" in headings
    claims_code = next(c.source for c in nb.cells if c.cell_type == "code" and "check_claims(" in c.source)
    assert "check_claims(claims, results, enforce=profile.name != \"quick\")" in claims_code


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_has_its_diagram_embedded(notebook):
    """What is trained, frozen, shared or sent: an SVG attachment (shows on Colab and the site, no file needed)."""
    nb = nbformat.read(notebook, as_version=4)
    figure = next((notebook.parent / "figures").glob(f"{notebook.name[:2]}_*.svg"))
    cells = [c for c in nb.cells if c.cell_type == "markdown" and figure.name in c.get("attachments", {})]
    assert len(cells) == 1 and f"attachment:{figure.name}" in cells[0].source
    assert base64.b64decode(cells[0].attachments[figure.name]["image/svg+xml"]) == figure.read_bytes()
