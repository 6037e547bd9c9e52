"""Colab's layout (issue #12): the package installed from its wheel, not editable, and each notebook copied alone
into an empty folder, with no repository around it; quick profile, offline. Whatever a notebook needs must ship in
the wheel (or the notebook must say where to read it), and its results land beside the notebook."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist,
                    ROOT], check=True, capture_output=True)
    return next(dist.glob("learnstrat_helpers-*.whl"))


@pytest.fixture(scope="module")
def wheel_kernel(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """A fresh venv holding only the wheel (its dependencies: this environment's site-packages, added after the
    venv's own by a .pth line, so the editable install's finder there is never activated); a kernel spec for it."""
    home = tmp_path_factory.mktemp("wheel-env")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", site,
                    wheel], check=True, capture_output=True)
    (site / "zz_course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    spec = home / "jupyter" / "kernels" / "learnstrat-wheel"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "display_name": "wheel",
                                                  "language": "python"}))
    return venv, home / "jupyter"


def test_the_wheel_ships_the_conll04_sample_and_no_repository_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"learnstrat_helpers/conll04_sample/{s}.jsonl" for s in ("train", "validation", "test")} <= set(names)
    assert not [n for n in names if n.startswith(("apps/", "data/", "notebooks/", "tests/"))]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_alone_from_the_wheel(notebook, wheel_kernel, tmp_path, monkeypatch):
    venv, jupyter_path = wheel_kernel
    folder = tmp_path / "colab"
    folder.mkdir()
    shutil.copy(notebook, folder)
    nb = nbformat.read(folder / notebook.name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(   # the package must come from the venv, not from a clone
        "import pathlib, learnstrat_helpers\n"
        f"assert pathlib.Path(learnstrat_helpers.__file__).is_relative_to({str(venv)!r}), learnstrat_helpers.__file__"))
    for name, value in {"JUPYTER_PATH": str(jupyter_path), "LEARNSTRAT_PROFILE": "quick", "LEARNSTRAT_PROGRESS": "0",
                        "LEARNSTRAT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LEARNSTRAT_RESULTS_DIR", raising=False)
    NotebookClient(nb, kernel_name="learnstrat-wheel", timeout=900,
                   resources={"metadata": {"path": str(folder)}}).execute()
    results = json.loads((folder / "build" / "results" / f"{notebook.stem}.json").read_text())
    assert results["profile"] == "quick" and results["claims"], "the claims cell wrote its results beside the notebook"
    assert {p.name for p in folder.iterdir()} == {"build", notebook.name}, "nothing else written beside it"
