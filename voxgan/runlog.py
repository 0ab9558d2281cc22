"""Per-epoch training logs: a CSV anyone can read and TensorBoard event files (the tutorial's habit)."""

from __future__ import annotations

import csv
from pathlib import Path

from tensorboardX import SummaryWriter

from voxgan.metric_table import PER_EPOCH

CSV_NAME = "losses.csv"


class RunLog:
    """Appends one row per epoch to `losses.csv` and scalars to `tensorboard/`.

    Appending (not rewriting) keeps the rows of a resumed run's earlier epochs.
    """

    def __init__(self, out_dir: Path):
        self.csv_path = out_dir / CSV_NAME
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def write(self, row: dict[str, float]) -> None:
        """One row; a resumed run's rows go under the columns the file already has, in its order."""
        header = None
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as handle:
                header = next(csv.reader(handle), None)
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or list(row))
            if header is None:
                writer.writeheader()
            writer.writerow(row)
        for key in PER_EPOCH:
            if key in row:
                self.writer.add_scalar(f"train/{key}", row[key], int(row["epoch"]))

    def close(self) -> None:
        self.writer.close()
