"""Optuna's warnings while it plots a report, said in one line each, or not at all.

Optuna warns with its own file paths and wording meant for developers. What a user can act on is
whether an importance is trustworthy; the rest (experimental APIs, the direction the importance
evaluator assumes, which is the study's, NaN values of failed trials) says nothing to act on.
"""

from __future__ import annotations

import re
import warnings

SPARSE = re.compile(r"Some regimes for parameter `([^`]+)` have less than 2 trials")
SILENT = ("is experimental", "is an experimental feature", "computes the importances of params to achieve low",
          "All-NaN slice encountered")


def explain(caught: list[warnings.WarningMessage]) -> list[str]:
    """One line per distinct thing worth saying, in the order first seen."""
    sparse: list[str] = []
    lines: list[str] = []
    for item in caught:
        message = str(item.message).strip().splitlines()[0] if str(item.message).strip() else ""
        if match := SPARSE.search(message):
            sparse.append(match.group(1))
        elif message and not any(text in message for text in SILENT) and f"note: {message}" not in lines:
            lines.append(f"note: {message}")
    if sparse:
        names = ", ".join(dict.fromkeys(sparse))
        lines.insert(0, f"note: importances of {names} rest on fewer than 2 trials in some of their ranges "
                        "(conditional or rarely sampled parameters); treat them as rough")
    return lines
