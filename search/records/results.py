"""Reading a finished (or running) study back: the best trial, export, plots.

Every trial carries its complete voxgan config and its checkpoint's location (in the storage
path, `voxgan_search.tuning.checkpoint_store`) as user attributes (written by the searcher), so the best trial
can be retrained or sampled without the search.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from voxgan_search.tuning.checkpoint_store import checkpoint_size, copy_to_local, is_file
from voxgan.config import Config
from voxgan.errors import VoxganError
from voxgan.metric_table import REPORTED, SUMMARY_ROWS

BASELINE_ATTR = "baseline"
REFERENCE_ATTR = "reference"
RECIPE_ATTRS = {"tutorial": BASELINE_ATTR, "reference": REFERENCE_ATTR}
"""The presets every new study runs first, in this order, and the user attribute that labels each:
the study then shows what the search gained over the tutorial and over a recipe known to train."""
CONFIG_ATTR = "config"
CHECKPOINT_ATTR = "checkpoint"
CURVE_ATTR = "curve"
"""[[kimg, score], ...] of every evaluation."""
KIMG_ATTR = "kimg"
"""Thousands of training shapes at the trial's last evaluation."""


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if CONFIG_ATTR in t.user_attrs]


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials, best first. Single objective: by value. Several objectives: the
    Pareto-optimal trials by their combined `score` (a documented tie-break, since a front has
    no single best), then the others by `score`."""
    trials = finished_trials(study)
    if len(study.directions) == 1:
        sign = 1 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1
        return sorted(trials, key=lambda t: sign * t.value)
    front = {t.number for t in study.best_trials} if trials else set()
    return sorted(trials, key=lambda t: (t.number not in front, t.user_attrs.get("score", float("inf"))))


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The first of `ranked_trials`."""
    ranked = ranked_trials(study)
    if not ranked:
        raise VoxganError(f"study '{study.study_name}' has no finished trial yet")
    return ranked[0]


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or CONFIG_ATTR not in trials[number].user_attrs:
        raise VoxganError(f"study '{study.study_name}' has no trial {number} with a config to export")
    return trials[number]


def baseline_trial(study: optuna.Study, label: str = BASELINE_ATTR) -> FrozenTrial | None:
    """The trial of the tutorial recipe, or of the recipe another label of RECIPE_ATTRS names."""
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(label):
            return trial
    return None


def export_best(study: optuna.Study, out: Path, number: int | None = None) -> tuple[FrozenTrial, Path, Path | None]:
    """Write the best trial's config (or trial `number`'s, e.g. 0 for the tutorial baseline) as
    YAML at `out` and copy its checkpoint beside it (`<stem>.pt`) from the storage path. Refuses to
    overwrite files. A trial whose checkpoint is gone (outside the best `keep_checkpoints`
    finished trials) exports its config alone, for `voxgan-train --config`: the third item is then None."""
    trial = best_trial(study) if number is None else trial_by_number(study, number)
    checkpoint_src = trial.user_attrs.get(CHECKPOINT_ATTR)
    checkpoint_out = out.with_suffix(".pt") if checkpoint_src and is_file(checkpoint_src) else None
    for path in (out, checkpoint_out):
        if path is not None and path.exists():
            raise VoxganError(f"{path}: already exists; choose another --out")
    cfg = Config.from_dict(trial.user_attrs[CONFIG_ATTR])
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if checkpoint_out is not None:
        copy_to_local(checkpoint_src, checkpoint_out)
    return trial, out, checkpoint_out


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

    trials = sorted(finished_trials(study), key=lambda t: t.user_attrs.get("score", float("inf")))[:top]
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


def summary(study: optuna.Study) -> dict:
    """The best trial beside the tutorial baseline and the reference recipe, with every metric
    they reported."""
    best = best_trial(study)

    def describe(trial: FrozenTrial | None) -> dict | None:
        if trial is None:
            return None
        return {
            "number": trial.number,
            "state": trial.state.name,
            "values": trial.values,
            "kimg": trial.user_attrs.get(KIMG_ATTR),
            "metrics": {key: trial.user_attrs[key] for key in REPORTED if key in trial.user_attrs},
            "params": trial.params,
        }

    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return {"study": study.study_name, "objectives": study.metric_names, "trials": {k: v for k, v in counts.items() if v},
            "best": describe(best), **{label: describe(baseline_trial(study, label)) for label in RECIPE_ATTRS.values()},
            "checkpoints": checkpoint_disk(study)}


def checkpoint_disk(study: optuna.Study) -> dict:
    """What the study's checkpoints take in the storage path: the trials that still have one, and
    their bytes (each keeps its last checkpoint, with its samples picture)."""
    sizes = [checkpoint_size(t.user_attrs[CHECKPOINT_ATTR]) for t in study.get_trials(deepcopy=False)
             if CHECKPOINT_ATTR in t.user_attrs]
    return {"trials": sum(size > 0 for size in sizes), "bytes": sum(sizes)}


def format_summary(result: dict) -> str:
    """The study's outcome as a small table: the best trial next to the tutorial baseline and the
    reference recipe."""
    columns = [*RECIPE_ATTRS.values(), "best"]
    trials = [result.get(column) for column in columns]
    counts = ", ".join(f"{count} {state.lower()}" for state, count in result["trials"].items())
    lines = [f"study '{result['study']}': {counts}", f"  {'':28}" + "".join(f" {c:>12}" for c in columns),
             f"  {'':28}" + "".join(f" {'trial ' + str(t['number']) if t else '-':>12}" for t in trials)]
    for key, label in SUMMARY_ROWS:
        cells = [(trial or {}).get("metrics", {}).get(key) for trial in trials]
        lines.append(f"  {label:28}" + "".join(f" {v:12.3f}" if isinstance(v, (int, float)) else f" {'-':>12}" for v in cells))
    for column, trial in zip(columns, trials):
        if trial and column != "best" and trial["state"] != "COMPLETE":
            lines.append(f"  (the {column} ended {trial['state'].lower()}: its metrics are from its last evaluation)")
    if "checkpoints" in result:
        disk = result["checkpoints"]
        lines.append(f"  checkpoints: {disk['trials']} trial(s) keep one, {disk['bytes'] / 1e6:.1f} MB on disk")
    return "\n".join(lines)
