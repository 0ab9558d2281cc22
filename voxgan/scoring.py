"""The scores of a set of samples, and how much they would move with other samples.

`sample_scores` is every metric of `voxgan.metrics` for one evaluation, the combined `score`
included, plus `score_se`: the score's standard error over the choice of samples and test shapes.
Two trials whose scores differ by less than about two of these differ by evaluation noise alone.

The standard error is a bootstrap that reuses what the evaluation computed once (`ScoreParts`:
the three IoU matrices, each shape's largest-part share and copy verdict, and the classifier
test's verdict on each held-out shape). A replicate draws the samples, the real test shapes and
the classifier's held-out samples with repetition and recomputes the six terms of the score from
those pieces, with every copy of a drawn shape left out of its own nearest-neighbour search, so a
replicate costs index arithmetic, not a new evaluation. What it leaves out: the classifier is
trained once and not refitted per replicate, so its own training noise is not counted, and the
seed of the training run is not varied at all (that spread is what a study's confirmation
measures, by retraining with several seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from voxgan import metrics
from voxgan.metrics import Volumes

BOOTSTRAP_REPLICATES = 200
"""Enough for a standard error to about 5% of itself (its relative error is 1 / sqrt(2 B))."""


@dataclass(frozen=True)
class ScoreParts:
    """What one evaluation computes once, from which the score of any resampling follows."""

    iou_real_real: np.ndarray
    iou_fake_fake: np.ndarray
    iou_real_fake: np.ndarray
    real_shares: np.ndarray
    """Largest-part share of each real test shape."""
    fake_shares: np.ndarray
    fake_copies: np.ndarray
    """Whether each sample is a near-copy of a training shape."""
    copy_reference: float
    c2st_real_right: np.ndarray
    """The classifier test's verdict on each real test shape (the same shapes as the IoU rows)."""
    c2st_fake_right: np.ndarray
    """... and on each of its held-out samples."""

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.real_shares), len(self.fake_shares), len(self.c2st_fake_right)

    def scores(self) -> dict[str, float]:
        """Every metric of the evaluation as it was drawn, and the score (not the occupancy ratio,
        which `score_parts` returns beside the pieces: no resampling needs it)."""
        scores = {
            "iou_mmd": metrics.mmd_from_iou(self.iou_real_fake),
            "iou_cov": metrics.cov_from_iou(self.iou_real_fake),
            "iou_1nna": metrics.one_nna_from_iou(self.iou_real_real, self.iou_fake_fake, self.iou_real_fake),
            "diversity": metrics.diversity_from_iou(self.iou_fake_fake),
            **metrics.structure_from_shares(self.real_shares, self.fake_shares),
            "copy_share": float(self.fake_copies.mean()),
            "copy_share_real": self.copy_reference,
            "copy_gap": metrics.copy_gap(float(self.fake_copies.mean()), self.copy_reference),
            "c2st_acc": metrics.balanced_accuracy(self.c2st_real_right, self.c2st_fake_right),
        }
        return metrics.with_score(scores)

    def resampled_score(self, real: np.ndarray, fake: np.ndarray, heldout: np.ndarray) -> float:
        """The score with the real test shapes, the samples and the classifier's held-out samples
        replaced by the draws `real`, `fake` and `heldout` (indices, with repetition)."""
        n_real = len(self.real_shares)
        rf = self.iou_real_fake[np.ix_(real, fake)]
        origin = np.concatenate([real, n_real + fake])
        copy_share = float(self.fake_copies[fake].mean())
        terms = {
            "iou_mmd": metrics.mmd_from_iou(rf),
            "iou_cov": metrics.cov_from_iou(rf, real_origin=real),
            "iou_1nna": metrics.one_nna_from_iou(self.iou_real_real[np.ix_(real, real)],
                                                 self.iou_fake_fake[np.ix_(fake, fake)], rf, origin=origin),
            **metrics.structure_from_shares(self.real_shares[real], self.fake_shares[fake]),
            "copy_gap": metrics.copy_gap(copy_share, self.copy_reference),
            "c2st_acc": metrics.balanced_accuracy(self.c2st_real_right[real], self.c2st_fake_right[heldout]),
        }
        return metrics.with_score(terms)["score"]

    def standard_error(self, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> float:
        """The bootstrap standard error of the score (the module's docstring says what it counts)."""
        rng = np.random.default_rng(seed)
        n_real, n_fake, n_heldout = self.sizes
        draws = [self.resampled_score(rng.integers(n_real, size=n_real), rng.integers(n_fake, size=n_fake),
                                      rng.integers(n_heldout, size=n_heldout)) for _ in range(replicates)]
        return float(np.std(draws, ddof=1))


def score_parts(fake: Volumes, fake_heldout: Volumes, real_test: Volumes, real_learn: Volumes, train: Volumes,
                copy_reference: float, *, c2st_epochs: int, seed: int,
                device: str | torch.device = "cpu") -> tuple[ScoreParts, float]:
    """The pieces of one evaluation (and the samples' occupancy ratio, which no resampling needs)."""
    c2st_real, c2st_fake = metrics.c2st_right(real_learn, fake, real_test, fake_heldout, epochs=c2st_epochs,
                                              seed=seed, device=device)
    parts = ScoreParts(
        iou_real_real=metrics.iou_matrix(real_test, real_test, device=device),
        iou_fake_fake=metrics.iou_matrix(fake, fake, device=device),
        iou_real_fake=metrics.iou_matrix(real_test, fake, device=device),
        real_shares=metrics.largest_part_shares(real_test),
        fake_shares=metrics.largest_part_shares(fake),
        fake_copies=metrics.copies(fake, train, device=device),
        copy_reference=copy_reference,
        c2st_real_right=c2st_real,
        c2st_fake_right=c2st_fake,
    )
    return parts, metrics.occupancy_ratio(real_test, fake)


def sample_scores(
    fake: Volumes, fake_heldout: Volumes, real_test: Volumes, real_learn: Volumes, train: Volumes, copy_reference: float,
    *, c2st_epochs: int, seed: int, device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Every metric of a set of samples: the IoU metrics against the real test shapes, the
    memorisation check against the whole training set (copy_reference: `copy_share_within` of
    it), the classifier test (which learns real_learn vs fake, tested on real_test vs
    fake_heldout), the score, and its bootstrap standard error `score_se` (seeded by `seed`)."""
    parts, occupancy_ratio = score_parts(fake, fake_heldout, real_test, real_learn, train, copy_reference,
                                         c2st_epochs=c2st_epochs, seed=seed, device=device)
    return {**parts.scores(), "occupancy_ratio": occupancy_ratio, "score_se": parts.standard_error(seed=seed)}
