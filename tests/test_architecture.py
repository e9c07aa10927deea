"""The floor plan of the package: every import between subpackages points down the order below (no job reaches up,
no cycle between floors), and no job module imports another job module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "interp_steer"
# lowest first; a module may import from its own floor and the floors before it
FLOORS = ["errors", "data", "checks", "scoring", "models", "config", "steering", "stats", "sae", "methods",
          "evaluation", "analysis", "viz", "report", "interop", "runs", "cli"]


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every absolute ``interp_steer.*`` import in ``path`` (lazy ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("interp_steer."):
            found.append((node.module or "", [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("interp_steer.")]
    return found


def _floor(relative: Path) -> str:
    return relative.parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if len(p.relative_to(PACKAGE).parts) > 1 or p.name != "__init__.py")


def test_every_floor_is_listed():
    floors = {_floor(p.relative_to(PACKAGE)) for p in MODULES}
    assert floors <= set(FLOORS), sorted(floors - set(FLOORS))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_point_down(path):
    mine = FLOORS.index(_floor(path.relative_to(PACKAGE)))
    upward = [f"line {line}: {module}" for module, _, line in _imports(path)
              if FLOORS.index(module.split(".")[1]) > mine]
    assert not upward, f"{path.relative_to(PACKAGE)} imports from a floor above it: {upward}"


def test_no_job_imports_another_jobs_private_names():
    runs = PACKAGE / "runs"
    reaching = [f"{p.name}:{line} {module}.{name}" for p in runs.glob("*.py") for module, names, line in _imports(p)
                for name in names if module.startswith("interp_steer.runs.") and name.startswith("_")]
    assert not reaching, reaching


def _module_name(path: Path) -> str:
    return ".".join(("interp_steer", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def test_no_import_cycle_between_modules():
    """Module-level imports (the ones that run at import time, lazy imports inside functions aside) form no cycle:
    a command module, for one, does not import the package that imports it."""
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me, edges = _module_name(path), set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("interp_steer"):
                edges |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
        graph[me] = {m for m in edges if m in known and m != me}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles[:3]
