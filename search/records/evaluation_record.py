"""What one Optuna trial keeps of its evaluations: metrics, learning curve, checkpoint, samples.

Each evaluation a Ray trial reports is stored on its Optuna trial as user attributes (every
metric of `voxgan.metric_table.REPORTED`, the kimg, the `curve` of the objective so far, the
checkpoint's path), as an intermediate value (single objective: the pruner's and the dashboard's
record) and with its rendered samples as artifacts (a PNG picture, and an STL mesh of the first
few that Optuna Dashboard shows in 3D), all before the trial is told finished.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from voxgan_search.tuning.checkpoint_store import CHECKPOINT_NAME, is_file, join, local_copy, previews, remove_checkpoint
from voxgan_search.records.objective import is_finite
from voxgan_search.records.results import CHECKPOINT_ATTR, CURVE_ATTR, KIMG_ATTR
from voxgan.metric_table import REPORTED

DEVICES_ATTR = "cuda_visible_devices"
RESUMED_ATTR = "resumed_from_kimg"
"""The kimg of the checkpoint a trial continued from after an interrupted run."""
FOLDER_ATTR = "ray_trial_folder"
"""The Ray trial's folder in the storage path (the last run's, for a continued trial)."""
NODE_ATTR = "ray_node_id"
HOST_ATTR = "hostname"
"""The Ray node (and its machine) that trained the trial; the last one for a continued trial."""


def step(kimg: float) -> int:
    """Optuna's integer step for an evaluation: training shapes shown (kimg * 1000)."""
    return round(kimg * 1000)


class EvaluationRecord:
    def __init__(self, trial: optuna.Trial, ray_trial_id: str, curve: list, experiment_dir: Path | str,
                 artifact_store: FileSystemArtifactStore, report_values: bool):
        self.trial = trial
        self.folder = join(str(experiment_dir), ray_trial_id)
        """The Ray trial's folder in the storage path: a local path or a URI."""
        trial.set_user_attr(FOLDER_ATTR, self.folder)
        self.curve = [list(point) for point in curve]
        self.artifact_store = artifact_store
        self.report_values = report_values
        """Single objective only: Optuna refuses intermediate values with several."""

    def add(self, result: dict, metric: str) -> None:
        """Store one evaluation, once: Ray may hand the last one to both of the searcher's callbacks."""
        if result.get("status") not in ("running", "finished") or (self.curve and self.curve[-1][0] == result["kimg"]):
            return
        self.curve.append([result["kimg"], result["score"]])
        for key in REPORTED:
            self.trial.set_user_attr(key, result[key])
        self.trial.set_user_attr(KIMG_ATTR, result["kimg"])
        self.trial.set_user_attr(CURVE_ATTR, self.curve)
        if self.report_values and is_finite([result[metric]]):
            self.trial.report(result[metric], step(result["kimg"]))
        if result.get("node_id") and result["node_id"] != self.trial.user_attrs.get(NODE_ATTR):
            self.trial.set_user_attr(NODE_ATTR, result["node_id"])
            self.trial.set_user_attr(HOST_ATTR, result["hostname"])
        if len(self.curve) == 1 and result.get("cuda_visible_devices"):  # the GPU(s) Ray gave the trial
            self.trial.set_user_attr(DEVICES_ATTR, result["cuda_visible_devices"])
        if result.get("start_kimg"):
            self.trial.set_user_attr(RESUMED_ATTR, result["start_kimg"])
        if result.get("checkpoint_dir_name"):
            folder = join(self.folder, result["checkpoint_dir_name"])
            previous = self.trial.user_attrs.get(CHECKPOINT_ATTR)
            self.trial.set_user_attr(CHECKPOINT_ATTR, join(folder, CHECKPOINT_NAME))
            if previous and not previous.startswith(self.folder + "/"):
                # an interrupted run's, continued from and now replaced
                remove_checkpoint(previous)
            for name, mimetype in previews(result["kimg"]).items():  # artifacts attach only while the trial runs
                if is_file(join(folder, name)):
                    with local_copy(join(folder, name)) as preview:
                        upload_artifact(artifact_store=self.artifact_store, file_path=str(preview),
                                        study_or_trial=self.trial, mimetype=mimetype)

    def restore_lost_reports(self, stored: dict[int, float]) -> None:
        """A driver killed between storing an evaluation's curve point and its intermediate value
        lost the latter; the curve is the record, so the pruner's copy is restored from it."""
        if self.report_values:
            for kimg, score in self.curve:
                if step(kimg) not in stored and is_finite([score]):
                    self.trial.report(score, step(kimg))
