"""``config/`` sits low (issue 27): it imports no job, evaluation, torch or pandas code, and the configs the command
line builds its options from load without torch or pandas, so ``interp-steer --help`` stays fast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "interp_steer" / "config"
ALLOWED = ("interp_steer.config", "interp_steer.errors", "interp_steer.models.embedded")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_config_package_imports_only_lower_layers():
    modules = sorted(CONFIG.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        own = {m for m in _imports(path) if m.startswith("interp_steer")}
        assert all(m.startswith(ALLOWED) for m in own), (path.name, sorted(own))
        assert not {"torch", "pandas", "numpy"} & {m.split(".")[0] for m in _imports(path)}, path.name


def test_configs_and_cli_load_without_torch_or_pandas():
    code = ("import sys, interp_steer.config, interp_steer.runs.job_configs, interp_steer.runs.analysis_configs, "
            "interp_steer.cli; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
