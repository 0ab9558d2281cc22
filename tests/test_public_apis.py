"""`search/` uses only the public APIs of Ray and Optuna, so a minor release of either cannot
break it through an internal it leaned on. Checked on the source: no attribute with a leading
underscore is read or written on any object (the harness's own classes need none either, so the
rule has no exceptions to keep up to date), no private module is imported, and no `getattr`
reaches for a private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SEARCH = Path(__file__).resolve().parents[1] / "search"


def private_uses(source: str) -> list[str]:
    """Each use of a private name in `source`, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                if module.split(".")[0] in ("ray", "optuna") and any(p.startswith("_") for p in module.split(".")):
                    found.append(f"{node.lineno}: import {module}")
                if module.split(".")[0] in ("ray", "optuna"):
                    found += [f"{node.lineno}: import {module}.{n}" for n in names if n.startswith("_")]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_")):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


@pytest.mark.parametrize("path", sorted(SEARCH.rglob("*.py")), ids=lambda p: str(p.relative_to(SEARCH)))
def test_search_touches_no_private_attribute(path):
    assert private_uses(path.read_text()) == []


def test_the_check_finds_private_uses():
    source = ("from ray.tune.search.optuna import OptunaSearch\nfrom optuna._imports import try_import\n"
              "import ray._private.services\nfrom optuna.study import _optimize\n"
              "x = study._storage.get_trial(trial._trial_id)\ny = getattr(searcher, '_ot_trials')\n")
    assert sorted(private_uses(source)) == sorted(["2: import optuna._imports", "3: import ray._private.services",
                                    "4: import optuna.study._optimize", "5: ._trial_id", "5: ._storage",
                                    "6: getattr(..., '_ot_trials')"])
