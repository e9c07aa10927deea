"""Build the tutorial notebooks from the cell sources below and execute them (outputs are committed).

    python notebooks/build_notebooks.py            # build + execute all
    python notebooks/build_notebooks.py 01         # only notebooks whose name starts with 01

The sources live in ``notebooks/sources/*.py``: cells are separated by lines ``# %%`` (code) or
``# %% [markdown]`` (markdown, each line prefixed by ``# ``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def cells_from_source(text: str) -> list:
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body.strip():
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path, execute: bool = True, timeout: int = 900) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = cells_from_source(source.read_text())
    target = HERE / f"{source.stem}.ipynb"
    if execute:
        started = time.perf_counter()
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        print(f"executed {target.name} in {time.perf_counter() - started:.0f} s")
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    for src in sorted((HERE / "sources").glob(f"{prefix}*.py")):
        build(src)
