"""The notebooks' shape: stripped outputs, badges and set-up from the one repository URL, exercises whose checks
flag stubs and wrong answers and accept the solutions, stated CPU times that are the measured ones, a claims cell.
(Whether the whole notebooks *run* is nbval's job in `make test`.)"""

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
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"git+{REPO_URL}@v{version}\"" in setup, "Colab installs the tagged release of this version, not a branch"
    assert ("learnstrat-helpers[flower] @" in setup) == path.name.startswith("04"), "the Flower extra: notebook 04 only"
    choose = [c.source for c in nb.cells if c.cell_type == "code"][1]
    assert choose.startswith("PROFILE = None"), "the second code cell lets the learner choose the profile"
    assert "get_profile(PROFILE)" in next(c.source for c in nb.cells if "get_profile" in c.source)


def test_the_package_version_is_pyprojects():
    import learnstrat_helpers

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert learnstrat_helpers.__version__ == version, f"set both, then tag v{version} (README, Releasing)"


def test_links_into_the_repository_name_this_release_and_files_that_exist():
    # A link read outside a clone (Colab) must point at the tag Colab installs and at a file that is there.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    pattern = rf"{re.escape(REPO_URL)}/blob/([^/\s\"]+)/([^\s\"')#?]+)"
    links = [(path.name, *link) for path in NOTEBOOKS
             for link in re.findall(pattern, "\n".join(c.source for c in nbformat.read(path, as_version=4).cells))]
    assert links, "no notebook links to a file of the repository (04's Flower cell should)"
    for name, ref, file in links:
        assert ref in ("main", f"v{version}"), f"{name} links to {file} at {ref!r}, not main or v{version}"
        assert (ROOT / file).is_file(), f"{name} links to {file}, which is not in the repository"


def test_readme_has_badges_for_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"colab.research.google.com/github/{GITHUB_PATH}/blob/main/notebooks/{path.name}" in readme
        assert f"mybinder.org/v2/gh/{GITHUB_PATH}/main?labpath=notebooks%2F{path.name}" in readme


def _exercises(nb) -> list[dict]:
    """Each exercise: its answer cell (tag "answer": the stub), the check cell after it, and its solution (the
    first ```python block of the next markdown cell holding <details><summary>Solution)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if "answer" in cell.metadata.get("tags", []):
            check = nb.cells[i + 1]
            solution = next(c.source for c in nb.cells[i + 1:] if c.cell_type == "markdown" and "<details><summary>Solution" in c.source)
            code = re.search(r"```python\n(.*?)```", solution, flags=re.S)
            found.append({"stub": cell.source, "check": check.source, "solution": code and code.group(1)})
    return found


def test_exercises_are_stubs_with_checks_and_collapsed_solutions(notebook):
    path, nb = notebook
    exercises = _exercises(nb)
    assert 2 <= len(exercises) <= 3, f"{path.name}: 2-3 exercises, found {len(exercises)}"
    assert not [c for c in nb.cells if "solution" in c.metadata.get("tags", [])], "solutions are markdown, never executed"
    # At least one exercise writes the notebook's mechanism: a function, whose stub raises until it is written.
    assert any(re.match(r"def \w+\(.*\):\n    raise NotImplementedError", e["stub"]) for e in exercises), path.name
    for e in exercises:
        assert re.fullmatch(r"(def \w+\(.*\):\n    raise NotImplementedError\(\"your code here\"\)|answer_\d+ = None  # .*)",
                            e["stub"]), f"{path.name}: an answer cell holds more than a stub:\n{e['stub']}"
        assert e["check"].count("exercises.check(") == 1, f"{path.name}: no check cell after\n{e['stub']}"
        assert "default_rng()" in e["check"] or "answered(" in e["check"], "a check draws fresh random inputs"
        assert e["solution"], f"{path.name}: no collapsed ```python solution after\n{e['stub']}"


# What each exercise's check needs from its notebook: the cells holding these strings (besides the Exercises
# section), run first in one kernel. 02's patience exercise reads the overfitting run's curves: a stand-in here,
# so that the test trains nothing.
CONTEXT = {"01_transfer_learning": ["PROFILE = None", "profile = get_profile(PROFILE)", "def train_linear_head("],
           "02_bert_fine_tuning": ["PROFILE = None", "profile = get_profile(PROFILE)", "class LoRALinear(", "def early_stopping("],
           "03_multitask_ner_re": ["PROFILE = None", "profile = get_profile(PROFILE)", "conll = ner_re.load_conll04()", "tokenizer = AutoTokenizer"],
           "04_federated_learning": ["PROFILE = None", "profile = get_profile(PROFILE)"]}
STAND_IN = {"02_bert_fine_tuning": "val_loss, val_acc, best = [0.69, 0.61, 0.62, 0.58, 0.60, 0.66], [0.52, 0.63, 0.64, 0.70, 0.69, 0.68], 3"}
# A deliberately wrong answer for every exercise, in order: each check must say "✗ not right yet".
WRONG = {
    "01_transfer_learning": [
        "def with_new_head(body, n_features, n_classes):\n    return nn.Sequential(body, nn.Linear(n_features, n_classes))",
        "def train_mlp_head(features, labels, n_classes, hidden=64, steps=300, lr=1e-2, seed=0):\n"
        "    return train_linear_head(features, labels, n_classes, steps, lr, seed)"],
    "02_bert_fine_tuning": [
        "def merge_lora(layer):\n    merged = nn.Linear(layer.base.in_features, layer.base.out_features)\n"
        "    with torch.no_grad():\n        merged.weight.copy_(layer.base.weight + layer.B @ layer.A)\n"
        "        merged.bias.copy_(layer.base.bias)\n    return merged",
        "answer_2 = (early_stopping(val_loss, 1)[1], val_acc[early_stopping(val_loss, 1)[1]])"],
    "03_multitask_ner_re": [
        "def joint_losses(model, batch):\n    hidden = model.encode(batch)\n"
        "    ner = nn.functional.cross_entropy(model.ner_head(hidden).flatten(0, 1), batch['ner_labels'].flatten().clamp(min=0))\n"
        "    return {'ner': ner, 're': nn.functional.cross_entropy(model.pair_logits(hidden, batch['pairs']), batch['pair_labels'])}",
        "def pcgrad(g1, g2):\n    return (g1 - (g1 @ g2) / (g2 @ g2) * g2, g2) if g1 @ g2 < 0 else (g1, g2)"],
    "04_federated_learning": [
        "def server_average(global_params, replies):\n    got = [r for r in replies if r is not None]\n"
        "    return [np.mean([p[i] for p, _ in got], axis=0) for i in range(len(global_params))] if got else global_params",
        "def quantize_8bit(t):\n    step = (t.max() - t.min()) / 256\n    return torch.round((t - t.min()) / step) * step + t.min()"],
}


def _text(outputs) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exercise_checks_flag_stubs_and_wrong_answers_and_accept_solutions(path, monkeypatch):
    """In one kernel (quick profile): the context cells, the section's import, then per exercise the stub, a wrong
    answer and the solution, each followed by the check cell. No check may raise (Run all goes on)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    exercises, wrong = _exercises(nb), WRONG[path.stem]
    assert len(wrong) == len(exercises), f"{path.name}: one wrong answer per exercise in WRONG"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    context = []
    for marker in CONTEXT[path.stem]:
        hits = [s for s in code if marker in s]
        assert len(hits) == 1, f"{path.name}: {marker!r} is in {len(hits)} cells, expected 1"
        context.append(hits[0])
    context += [STAND_IN.get(path.stem, ""), next(s for s in code if s.startswith("from learnstrat_helpers import exercises"))]
    monkeypatch.setenv("LEARNSTRAT_PROFILE", "quick")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell()]), timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})

    def run(source: str) -> str:
        cell = nbformat.v4.new_code_cell(source)
        client.execute_cell(cell, 0)   # in the client's one-cell notebook; raises CellExecutionError on any error
        return _text(cell.outputs)

    with client.setup_kernel():
        for source in context:
            run(source)
        for e, bad in zip(exercises, wrong):
            name = e["stub"].split("(")[0].split("=")[0].removeprefix("def ").strip()
            for answer, verdict in ((e["stub"], "not answered yet: "), (bad, "✗ not right yet: "), (e["solution"], "✓ correct: ")):
                run(answer)
                out = run(e["check"])
                assert out.startswith(verdict) and out.count("\n") <= 1, f"{path.name}, {name}: expected {verdict!r}, got {out!r}"


def _measured_wall_s() -> dict[str, int]:
    """benchmarks/README.md's table: notebook -> wall (s)."""
    rows = re.findall(r"^\| (\d\d_\w+) \| [^|]+ \| (\d+) \|", (ROOT / "benchmarks" / "README.md").read_text(), flags=re.M)
    return {name: int(wall) for name, wall in rows}


def test_stated_cpu_times_are_the_measured_ones(notebook):
    """Every CPU time the intro states is the benchmark table's wall time, in minutes rounded to the nearest
    (half up: 250 s is "about 4 minutes", 270 s "about 5"); the seconds, where given, are the table's. GPU times
    are not measured: an intro that mentions a GPU says so."""
    path, nb = notebook
    wall = _measured_wall_s()
    assert path.stem in wall, f"benchmarks/README.md has no row for {path.stem}"
    intro = nb.cells[0].source
    minutes = re.findall(r"(\d+(?:-\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|a few) min(?:ute)?s?\b", intro)
    assert minutes, f"{path.name}: the intro states no time in minutes"
    expected = str(int(wall[path.stem] / 60 + 0.5))
    assert set(minutes) == {expected}, f"{path.name}: states {minutes} minutes; benchmarks/README.md: {wall[path.stem]} s = about {expected}"
    assert "2-core CPU" in intro, "say which machine the time is for"
    seconds = re.findall(r"(\d+) s measured", intro)
    assert set(seconds) <= {str(wall[path.stem])}, f"{path.name}: states {seconds} s; the table says {wall[path.stem]}"
    if "GPU" in intro:
        assert "on a GPU: not" in intro and not re.search(r"\d+ (?:s|min\w*) on a GPU", intro), "no GPU time was measured"


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
