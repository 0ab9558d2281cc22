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
from voxgan.config import Config, dotted
from voxgan_search.records.trial_record import (
    BASELINE_ATTR, CURVE_ATTR, FOLDER_ATTR, KIMG_ATTR, LINEAGE_ATTR, final_score, is_confirmation, trained_config,
)
from voxgan_search.tuning.lineage import MEMBER_PREFIX


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
    if any(t.user_attrs.get(LINEAGE_ATTR) for t in study.get_trials(deepcopy=False)):
        save("population.png", lambda: plot_population(study))
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


def plot_population(study: optuna.Study) -> None:
    """A population's members: their scores against kimg with each copy marked (an arrow from the
    member copied, at the kimg of the copy), and beside them the best member's schedule: each
    switched key's value against kimg, from its starting config to the end of its budget."""
    import matplotlib.pyplot as plt

    members = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(CURVE_ATTR) and not is_confirmation(t)
               and t.user_attrs.get(FOLDER_ATTR, "").rsplit("/", 1)[-1].startswith(MEMBER_PREFIX)]
    best = min((t for t in members if t.state == optuna.trial.TrialState.COMPLETE), key=final_score, default=None)
    schedule = Config.from_dict(trained_config(best)).schedule if best else []
    keys = list(dict.fromkeys(entry.key for entry in schedule))
    fig = plt.figure()
    grid = fig.add_gridspec(2, max(1, len(keys)), height_ratios=[2, 1])
    ax = fig.add_subplot(grid[0, :])
    curves = {t.number: t.user_attrs[CURVE_ATTR] for t in members}
    for trial in members:
        curve = curves[trial.number]
        line, = ax.plot([p[0] for p in curve], [p[1] for p in curve], marker="o", markersize=3,
                        linewidth=2.5 if best is not None and trial.number == best.number else 1,
                        label=f"trial {trial.number}" + (" (best)" if best is not None and trial.number == best.number else ""))
        for copy in trial.user_attrs.get(LINEAGE_ATTR, []):
            source = [p for p in curves.get(copy["from"], []) if p[0] <= copy["kimg"]]
            if source:
                ax.annotate("", xy=(copy["kimg"], source[-1][1]), xytext=(source[-1][0], source[-1][1] + 0.02),
                            arrowprops={"arrowstyle": "->", "color": line.get_color()})
            ax.axvline(copy["kimg"], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("kimg")
    ax.set_ylabel("score (lower is better)")
    ax.set_title("scores at each evaluation; a faint line and an arrow mark each copy", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    if best is None or not keys:
        note = fig.add_subplot(grid[1, :])
        note.axis("off")
        note.text(0.5, 0.5, "the best member never switched settings", ha="center")
        return
    start = Config.from_dict(trained_config(best))
    end = best.user_attrs.get(KIMG_ATTR, start.kimg or 0)
    for column, key in enumerate(keys):
        ax = fig.add_subplot(grid[1, column])
        points = [(0.0, float(dotted.get(start, key)))] + [(e.kimg, e.value) for e in schedule if e.key == key]
        xs = [x for x, _ in points] + [end]
        ys = [y for _, y in points] + [points[-1][1]]
        ax.step(xs, ys, where="post")
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("kimg", fontsize=7)
    fig.suptitle(f"Population-based training: the members, and the schedule of the best (trial {best.number})")


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
