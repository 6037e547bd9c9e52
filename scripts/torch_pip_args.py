"""Print the pip arguments that install torch for `make setup`: which build, from where.

    python scripts/torch_pip_args.py --torch cpu --version 2.13.0 [--system Linux]

The version itself comes from ``-c constraints.txt`` on the command line (`make setup`, and `postBuild` for Binder).

- ``--torch cuda``, or a system other than Linux: ``torch`` from PyPI (on Linux that is the CUDA build; on
  macOS and Windows PyPI's wheel is the CPU one).
- ``--torch cpu`` on Linux: the CPU build. If pip's find-links (``PIP_FIND_LINKS``, or ``find-links`` in
  pip's configuration) hold a local ``torch-VERSION+cpu`` wheel for this Python and machine, that file with
  ``--no-index``: it installs offline and never waits on a network. Otherwise PyTorch's CPU index
  (``--index-url https://download.pytorch.org/whl/cpu``), the only place the CPU build of Linux torch lives.

Standard library only: it runs with the Python that creates the virtual environment, before pip is there.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("cpu", "cuda")


def find_links() -> list[str]:
    """pip's find-links locations: the environment variable, then pip's configuration (if pip is there)."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True, timeout=30, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        for line in listed.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.endswith(".find-links"):
                links += value.strip().strip("'\"").split()
    except (OSError, subprocess.SubprocessError):
        pass  # no pip beside this Python: the environment variable is all we know
    return list(dict.fromkeys(links))


def local_dir(link: str) -> Path | None:
    """A find-links entry as a local folder, or None for a URL or a missing folder."""
    parsed = urlparse(link)
    if parsed.scheme == "file":
        link = unquote(parsed.path)
    elif parsed.scheme:
        return None
    path = Path(link).expanduser()
    return path if path.is_dir() else None


def local_cpu_wheel(version: str, links: list[str]) -> Path | None:
    """A ``torch-VERSION+cpu`` wheel for this interpreter and machine in one of the local find-links folders."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    machine = platform.machine().lower()
    for link in links:
        folder = local_dir(link)
        if folder is None:
            continue
        for wheel in sorted(folder.glob(f"torch-{version}+cpu-{tag}-{tag}-*.whl")):
            if wheel.name.endswith(f"_{machine}.whl"):
                return wheel
    return None


def pip_args(torch: str, version: str, system: str, links: list[str]) -> list[str]:
    if torch not in CHOICES:
        raise SystemExit(f"error: LEARNSTRAT_TORCH={torch!r}: choose one of {', '.join(CHOICES)} "
                         "(cpu: the CPU build, the default; cuda: PyPI's CUDA build)")
    if torch == "cuda" or system != "Linux":
        return ["torch"]
    wheel = local_cpu_wheel(version, links)
    if wheel is not None:
        return ["--no-index", str(wheel)]
    return ["--index-url", CPU_INDEX, "torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--version", required=True, help="torch's version (constraints.txt): the local wheel's")
    parser.add_argument("--system", default=platform.system(), help="the OS (default: this one)")
    args = parser.parse_args()
    print(" ".join(pip_args(args.torch.strip().lower(), args.version, args.system, find_links())))


if __name__ == "__main__":
    main()
