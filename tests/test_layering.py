"""voxgan/ is the GAN library and imports neither Ray nor Optuna nor the harness: training,
evaluation and sampling work where only torch is installed. Checked twice: on the source (any
import statement, at any depth) and by importing every module in a fresh interpreter."""

import ast
import json
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "voxgan"
FORBIDDEN = ("ray", "optuna", "optuna_dashboard", "voxgan_search", "search")


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_library_module_imports_the_harness_or_its_dependencies():
    found = {str(path.relative_to(LIBRARY)): sorted(imported_roots(path.read_text()) & set(FORBIDDEN))
             for path in sorted(LIBRARY.rglob("*.py"))}
    assert {name: roots for name, roots in found.items() if roots} == {}


def test_the_check_sees_nested_imports():
    assert imported_roots("def f():\n    import ray.tune\n    from optuna import trial\n") == {"ray", "optuna"}


def test_importing_every_library_module_loads_neither_ray_nor_optuna():
    code = (
        "import importlib, json, pkgutil, sys, voxgan\n"
        "names = [m.name for m in pkgutil.walk_packages(voxgan.__path__, 'voxgan.')]\n"
        "for name in names: importlib.import_module(name)\n"
        f"print(json.dumps([len(names), sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, loaded = json.loads(out.strip().splitlines()[-1])
    assert count >= 20 and loaded == []
