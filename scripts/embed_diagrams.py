"""Embed each notebook's diagram (notebooks/figures/<NN>_*.svg, drawn by scripts/draw_diagrams.py) as an
attachment of a markdown cell right after the notebook's "## The idea" heading, so it shows on Colab, Binder,
JupyterLab and the site without any file beside the notebook. Idempotent: a second run updates the image.
Usage: python scripts/embed_diagrams.py
"""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = {
    "01": "What is frozen and what is trained when you transfer a pretrained network.",
    "02": "Which weights learn in each fine-tuning strategy of this notebook, and LoRA's low-rank update.",
    "03": "Hard parameter sharing: one encoder trained by both tasks' losses, one head per task.",
    "04": "What stays on each client and what travels: updates up, the global model down.",
}


def embed(notebook: Path, svg: Path) -> bool:
    nb = nbformat.read(notebook, as_version=4)
    data = base64.b64encode(svg.read_bytes()).decode()
    source = f"![{CAPTIONS[notebook.name[:2]]}](attachment:{svg.name})\n\n*{CAPTIONS[notebook.name[:2]]}*"
    existing = [c for c in nb.cells if c.cell_type == "markdown" and svg.name in c.get("attachments", {})]
    if existing:
        existing[0].source, existing[0].attachments = source, {svg.name: {"image/svg+xml": data}}
    else:
        idea = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and
                     c.source.lstrip().startswith("## The idea")), None)
        if idea is None:
            raise SystemExit(f"{notebook.name}: no '## The idea' markdown cell to put the diagram after")
        cell = nbformat.v4.new_markdown_cell(source, attachments={svg.name: {"image/svg+xml": data}})
        cell.pop("id", None) if nb.nbformat_minor < 5 else None
        nb.cells.insert(idea + 1, cell)
    nbformat.write(nb, notebook)
    return not existing


def main() -> None:
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        svg = next((ROOT / "notebooks" / "figures").glob(f"{notebook.name[:2]}_*.svg"))
        print(f"{notebook.name}: {'added' if embed(notebook, svg) else 'updated'} {svg.name}")


if __name__ == "__main__":
    main()
