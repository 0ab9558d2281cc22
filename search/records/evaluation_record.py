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

from voxgan_search.records.trial_record import (
    CHECKPOINT_ATTR, CURVE_ATTR, DEGENERATE_ATTR, DEVICES_ATTR, FOLDER_ATTR, HOST_ATTR, KIMG_ATTR, NODE_ATTR, PRECISION_ATTR, RESUMED_ATTR,
    Report, is_finite,
)
from voxgan_search.tuning.checkpoint_store import (
    CHECKPOINT_NAME, is_file, join, local_copy, parent, previews, remove_other_checkpoints,
)


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
        """Store one evaluation, once: Ray may hand the last one to both of the searcher's callbacks.
        `result` is Ray's: the trial's `Report` and Ray's own keys (its checkpoint's folder)."""
        report = Report.from_result(result)
        if report is None or not report.status.evaluated or (self.curve and self.curve[-1][0] == report.kimg):
            return
        self.curve.append([report.kimg, report.score])
        for key, value in report.metrics.items():
            self.trial.set_user_attr(key, value)
        self.trial.set_user_attr(KIMG_ATTR, report.kimg)
        self.trial.set_user_attr(CURVE_ATTR, self.curve)
        if self.report_values and is_finite([report.metrics[metric]]):
            self.trial.report(report.metrics[metric], step(report.kimg))
        if report.node_id and report.node_id != self.trial.user_attrs.get(NODE_ATTR):
            self.trial.set_user_attr(NODE_ATTR, report.node_id)
            self.trial.set_user_attr(HOST_ATTR, report.hostname)
        if len(self.curve) == 1 and report.cuda_visible_devices:
            self.trial.set_user_attr(DEVICES_ATTR, report.cuda_visible_devices)
        if len(self.curve) == 1 and report.precision:
            self.trial.set_user_attr(PRECISION_ATTR, report.precision)
        if report.degenerate:
            self.trial.set_user_attr(DEGENERATE_ATTR, report.degenerate)
        if report.start_kimg:
            self.trial.set_user_attr(RESUMED_ATTR, report.start_kimg)
        if result.get("checkpoint_dir_name"):
            folder = join(self.folder, result["checkpoint_dir_name"])
            previous = self.trial.user_attrs.get(CHECKPOINT_ATTR)
            self.trial.set_user_attr(CHECKPOINT_ATTR, join(folder, CHECKPOINT_NAME))
            if previous and not previous.startswith(self.folder + "/"):
                # An interrupted run's, continued from and now replaced: every checkpoint in its
                # folder goes, those its worker persisted after the driver's last record
                # included (a worker can outlive its driver by the time a checkpoint takes).
                remove_other_checkpoints(parent(parent(previous)), keep=None)
            for name, mimetype in previews(report.kimg).items():  # artifacts attach only while the trial runs
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
