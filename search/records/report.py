"""`voxgan-search report`: a study's plots, and Optuna's warnings while it plots them said in
one line each, or not at all.

Optuna warns with its own file paths and wording meant for developers. What a user can act on is
whether an importance is trustworthy; the rest (experimental APIs, the direction the importance
evaluator assumes, which is the study's, NaN values of failed trials) says nothing to act on.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import optuna

from voxgan.errors import VoxganError
from voxgan_search.records.ranking import baseline_trial, finished_trials
from voxgan_search.records.summary import summary
from voxgan_search.records.trial_record import BASELINE_ATTR, CURVE_ATTR, final_score


def write_report(study: optuna.Study, out_dir: Path) -> list[Path]:
    """PNG plots: optimisation history, parameter importances, Pareto front (several objectives),
    and the learning curves of the best trials. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # imported here: commands that plot nothing write no font cache
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    out_dir.mkdir(parents=True, exist_ok=True)
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    written: list[Path] = []

    def save(name: str, draw) -> None:
        plt.close("all")
        draw()
        path = out_dir / name
        plt.gcf().set_size_inches(9, 6)
        plt.tight_layout()
        plt.savefig(path, dpi=90)
        plt.close("all")
        written.append(path)

    complete = finished_trials(study)
    if not complete:
        raise VoxganError(f"study '{study.study_name}' has no finished trial to report on")
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    if len(study.directions) == 1:
        save("history.png", lambda: vis.plot_optimization_history(study, target_name=names[0]))
        if len(complete) >= 3:
            save("importances.png", lambda: vis.plot_param_importances(study, evaluator=evaluator))
        save("learning_curves.png", lambda: plot_learning_curves(study))
    else:
        for i, name in enumerate(names):
            save(f"history_{name}.png", lambda i=i, name=name: vis.plot_optimization_history(
                study, target=lambda t: t.values[i], target_name=name))
        save("pareto_front.png", lambda: vis.plot_pareto_front(study, target_names=names))
        if len(complete) >= 3:
            save("importances.png", lambda: vis.plot_param_importances(
                study, evaluator=evaluator, target=lambda t: t.user_attrs.get("score", float("nan")), target_name="score"))
        save("learning_curves.png", lambda: plot_learning_curves(study))
    (out_dir / "best.json").write_text(json.dumps(summary(study), indent=2))
    written.append(out_dir / "best.json")
    return written


def plot_learning_curves(study: optuna.Study, top: int = 5) -> None:
    """The `score` of the best trials at each evaluation, from their `curve` user attribute."""
    import matplotlib.pyplot as plt

    trials = sorted(finished_trials(study), key=lambda t: final_score(t))[:top]
    base = baseline_trial(study)
    if base is not None and base not in trials and base.user_attrs.get(CURVE_ATTR):
        trials.append(base)
    _, ax = plt.subplots()
    for trial in trials:
        curve = trial.user_attrs.get(CURVE_ATTR, [])
        label = f"trial {trial.number}" + (" (tutorial baseline)" if trial.user_attrs.get(BASELINE_ATTR) else "")
        ax.plot([p[0] for p in curve], [p[1] for p in curve], marker="o", label=label,
                linestyle="--" if trial.user_attrs.get(BASELINE_ATTR) else "-")
    ax.set_xlabel("kimg (thousands of training shapes shown)")
    ax.set_ylabel("score (lower is better)")
    ax.set_title("Learning curves of the best trials")
    ax.legend()


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
