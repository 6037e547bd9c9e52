"""What `make setup` would run (read from `make -n`, nothing installed): the CPU build of torch on Linux unless
LEARNSTRAT_TORCH=cuda, offline from a local wheel where pip's find-links have one; one clear error on a Python
older than 3.11."""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

spec = importlib.util.spec_from_file_location("torch_pip_args", ROOT / "scripts" / "torch_pip_args.py")
torch_pip_args = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_pip_args)

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="the CPU index is for Linux")


def torch_pin() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("constraints.txt pins no torch")


def dry_run(tmp_path: Path, *make_args: str, find_links: str = "") -> subprocess.CompletedProcess:
    """`make -n setup` into a venv that doesn't exist yet, with pip's own configuration files ignored."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "LEARNSTRAT_TORCH", "MAKE"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=find_links)
    return subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}",
                           *make_args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def install_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " -m pip install " in line]


def torch_line(output: str) -> str:
    def installs_torch(line: str) -> bool:
        words = line.split(" install ", 1)[1].split()
        return any(w == "torch" or Path(w).name.startswith("torch-") for w in words)

    lines = [line for line in install_lines(output) if installs_torch(line)]
    assert len(lines) == 1, f"expected one torch install line in:\n{output}"
    return lines[0]


@needs_make
@linux_only
def test_linux_default_installs_torch_from_the_cpu_index_before_the_rest(tmp_path):
    run = dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    line = torch_line(run.stdout)
    assert line.endswith(f"--no-deps -c constraints.txt --index-url {CPU_INDEX} torch"), line
    lines = install_lines(run.stdout)
    package_line = next(i for i, l in enumerate(lines) if '-e ".[dev]"' in l)
    assert lines.index(line) < package_line, "torch must be installed before the package, which then keeps it"


@needs_make
@linux_only
def test_a_local_cpu_wheel_in_find_links_installs_offline(tmp_path):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / f"torch-{torch_pin()}+cpu-{tag}-{tag}-manylinux_2_28_{platform.machine()}.whl"
    wheel.touch()
    (wheels / f"torch-{torch_pin()}+cpu-cp30-cp30-manylinux_2_28_{platform.machine()}.whl").touch()  # other Python
    run = dry_run(tmp_path, find_links=str(wheels))
    assert run.returncode == 0, run.stderr
    line = torch_line(run.stdout)
    assert f"--no-index {wheel}" in line, line
    assert "download.pytorch.org" not in run.stdout, "offline: nothing may wait on PyTorch's index"


@needs_make
@linux_only
def test_cuda_on_request_takes_pypis_build(tmp_path):
    run = dry_run(tmp_path, "LEARNSTRAT_TORCH=cuda")
    assert run.returncode == 0, run.stderr
    line = torch_line(run.stdout)
    assert line.endswith("--no-deps -c constraints.txt torch"), line
    assert CPU_INDEX not in run.stdout and "+cpu" not in line


@needs_make
def test_an_unknown_torch_choice_is_one_clear_error(tmp_path):
    run = dry_run(tmp_path, "LEARNSTRAT_TORCH=rocm")
    assert run.returncode != 0
    assert "LEARNSTRAT_TORCH=rocm: choose cpu (the default) or cuda" in run.stderr, run.stderr


def test_other_systems_take_pypis_wheel_and_bad_choices_fail():
    pin = torch_pin()
    assert torch_pip_args.pip_args("cpu", pin, "Darwin", []) == ["torch"]
    assert torch_pip_args.pip_args("cpu", pin, "Linux", []) == ["--index-url", CPU_INDEX, "torch"]
    with pytest.raises(SystemExit, match="choose one of cpu, cuda"):
        torch_pip_args.pip_args("rocm", pin, "Linux", [])


def test_find_links_urls_and_missing_folders_are_not_local(tmp_path):
    assert torch_pip_args.local_dir("https://example.org/wheels") is None
    assert torch_pip_args.local_dir(str(tmp_path / "missing")) is None
    assert torch_pip_args.local_dir(tmp_path.as_uri()) == tmp_path


def older_python() -> str | None:
    candidates = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0]*/bin/python3.10")))
    candidates += sorted(glob.glob("/usr/bin/python3.[89]") + glob.glob("/usr/bin/python3.10"))
    for path in filter(None, candidates):
        probe = subprocess.run([path, "-c", "import sys; print(sys.version_info < (3, 11))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return path
    return None


@needs_make
def test_a_python_older_than_311_gets_one_clear_message(tmp_path):
    python = older_python()
    if python is None:
        pytest.skip("no Python older than 3.11 on this machine")
    venv = tmp_path / "venv"
    run = subprocess.run(["make", "setup", f"PYTHON={python}", f"VENV={venv}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs Python 3.11 or newer" in errors[0], run.stderr
    assert not venv.exists(), "nothing may be created before the check"


def pip_commands(lines: list[str]) -> list[list[str]]:
    """Each `pip install` line as its arguments, without the interpreter in front and pip's --quiet."""
    commands = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if "install" in words and "pip" in words:
            commands.append([w for w in words[words.index("install") + 1:] if w != "--quiet"])
    return commands


@needs_make
@linux_only
def test_binder_runs_the_pip_installs_of_make(tmp_path):
    # Binder is Linux without a local torch wheel: what `make setup` runs there is what postBuild must run.
    run = dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    from_make = pip_commands(install_lines(run.stdout))
    from_make = [c for c in from_make if c != ["--upgrade", "pip"]]  # the venv's own pip; Binder's is recent
    post_build = ROOT / "postBuild"
    assert post_build.is_file() and os.access(post_build, os.X_OK), "postBuild must exist and be executable"
    from_binder = pip_commands(post_build.read_text().splitlines())
    assert from_make and from_binder == from_make, f"make: {from_make}\nBinder: {from_binder}"
    env_yml = (ROOT / "environment.yml").read_text()
    assert "- pip:" not in env_yml, "environment.yml may not install pip packages of its own: postBuild does"


def load_lowest_versions():
    spec = importlib.util.spec_from_file_location("lowest_versions", ROOT / "scripts" / "lowest_versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lowest_versions_check_keeps_cpu_torch_and_never_uses_constraints(tmp_path):
    lowest = load_lowest_versions()
    steps = lowest.plan(tmp_path / "venv", "lowest-direct", "uv", sys.executable, [])
    flat = [word for step in steps for word in step]
    assert "constraints.txt" not in flat, "the check is of pyproject's bounds, not of our pins"
    torch_step = next(s for s in steps if any(w.startswith("torch") for w in s))
    package_step = next(s for s in steps if ".[dev]" in s)
    assert steps.index(torch_step) < steps.index(package_step) and "--no-deps" in torch_step
    if platform.system() == "Linux":
        assert torch_step[-3:] == ["--index-url", CPU_INDEX, f"torch=={torch_pin()}"], torch_step
    assert package_step[package_step.index("--resolution") + 1] == "lowest-direct"
    assert "-c" in package_step   # torch pinned to what the first step installed


def test_lowest_versions_check_pins_every_floor_of_pyproject():
    lowest = load_lowest_versions()
    pins = dict(p.split("==") for p in lowest.floors())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    bounded = [r for r in requirements if ">=" in r]
    assert len(pins) == len(bounded) - 1, "every direct dependency bounded from below but torch is pinned to its floor"
    assert "torch" not in pins and pins["datasets"] == next(r for r in bounded if r.startswith("datasets")).split(">=")[1]
