"""How good are generated voxel shapes? IoU-based set metrics and a classifier two-sample test.

Every function takes volumes of shape (N, R, R, R) (any shape (N, ...) works: everything after
the first axis is flattened), as numpy arrays or torch tensors, bool, 0/1 or probabilities:
values are thresholded at 0.5 (`occupancy`), so raw generator output can be passed directly.

The set metrics all rest on one pairwise matrix, `iou_matrix`, and come in two layers so nothing
is computed twice: `*_from_iou` functions take precomputed matrices, and the volume-level
functions (`iou_mmd`, `iou_cov`, `iou_1nna`, `diversity`, `voxel_metrics`, `real_reference`)
compute the matrices they need and call them. The distance between two shapes is 1 - IoU.

`with_score` combines them into the one `score` a search minimises; `voxgan.scoring` gives
every metric of a set of samples with the score and its standard error: the trainer's
evaluation, a search's trials and the benchmarks all take them from there. The names, directions and labels of all of them are in `voxgan.metric_table`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.ndimage
import torch
from torch import nn

from voxgan.data.split import evenly_spaced_index

Volumes = np.ndarray | torch.Tensor

MAX_EXACT_COUNT = 2**24
"""Float32 represents every integer up to 2^24 exactly, so intersection counts computed as float32
matrix products are exact for shapes with fewer voxels than this (128^3 = 2^21)."""

CHUNK_BYTES = 256 * 2**20
"""Default size of one float32 block of flattened shapes in `iou_matrix`: bounds memory to about
twice this plus the bool inputs, whatever the number of shapes."""


# ---- IoU ----------------------------------------------------------------------------------------


THRESHOLD = 0.5
"""Where an occupancy probability becomes a filled voxel, everywhere in voxgan."""


def as_bool(volumes: Volumes, threshold: float = THRESHOLD) -> np.ndarray:
    """Volumes as a bool numpy array of the same shape: bool kept, anything else > threshold."""
    array = volumes.detach().cpu().numpy() if isinstance(volumes, torch.Tensor) else np.asarray(volumes)
    return array if array.dtype == bool else array > threshold


def occupancy(volumes: Volumes) -> torch.Tensor:
    """Volumes as a (N, V) bool tensor on their own device (`as_bool`'s rule, without leaving it)."""
    tensor = volumes if isinstance(volumes, torch.Tensor) else torch.from_numpy(np.asarray(volumes))
    if tensor.ndim < 2:
        raise ValueError(f"expected volumes of shape (N, R, R, R), got shape {tuple(tensor.shape)}")
    flat = tensor.reshape(tensor.shape[0], -1)
    return flat if flat.dtype == torch.bool else flat > THRESHOLD


def _row_chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def iou_matrix(
    a: Volumes, b: Volumes, *, device: str | torch.device | None = None, chunk: int | None = None
) -> np.ndarray:
    """Pairwise voxel IoU |a_i AND b_j| / |a_i OR b_j| as a float64 (len(a), len(b)) array.

    Conventions: IoU(empty, empty) = 1 (two empty shapes are the same shape) and
    IoU(empty, non-empty) = 0. Intersections are one matrix product of flattened 0/1 floats per
    block of `chunk` x `chunk` shapes, so memory stays bounded (1,000 x 1,000 shapes at 64^3 fit
    easily) and the work runs on BLAS or, given a CUDA `device`, on the GPU. The default device
    is the one `a` lives on. The counts are exact: products of 0/1 are 0/1 in any float format,
    including TF32 (a CUDA matmul may use it when the global setting allows; its inputs 0/1 are
    exact in its 10-bit mantissa and it accumulates in fp32), and fp32 sums of 0/1 are exact
    below 2^24. The union comes from exact integer sizes: |a| + |b| - |a AND b|.
    """
    flat_a, flat_b = occupancy(a), occupancy(b)
    n_voxels = flat_a.shape[1]
    if flat_b.shape[1] != n_voxels:
        raise ValueError(f"shapes differ in size: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    if n_voxels >= MAX_EXACT_COUNT:
        raise ValueError(f"{n_voxels} voxels per shape: float32 counts are exact only below 2^24")
    device = torch.device(device) if device is not None else flat_a.device
    flat_a, flat_b = flat_a.to(device), flat_b.to(device)
    chunk = chunk or max(1, CHUNK_BYTES // (4 * n_voxels))

    intersection = torch.empty(len(flat_a), len(flat_b), dtype=torch.float32, device=device)
    for rows in _row_chunks(len(flat_a), chunk):
        block_a = flat_a[rows].float()
        for cols in _row_chunks(len(flat_b), chunk):
            intersection[rows, cols] = block_a @ flat_b[cols].float().T

    inter = intersection.cpu().double().numpy()
    size_a = flat_a.sum(dim=1).cpu().double().numpy()
    size_b = flat_b.sum(dim=1).cpu().double().numpy()
    union = size_a[:, None] + size_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 1.0)


# ---- metrics on precomputed IoU matrices --------------------------------------------------------


def mmd_from_iou(iou_real_fake: np.ndarray) -> float:
    """Minimum matching distance: mean over real shapes (rows) of the smallest 1 - IoU to any
    generated shape (columns). 0 when every real shape is generated exactly; lower is better."""
    return float(np.mean(1.0 - iou_real_fake.max(axis=1)))


def cov_from_iou(iou_real_fake: np.ndarray, real_origin: np.ndarray | None = None) -> float:
    """Coverage: the fraction of real shapes (rows) that are the nearest real shape (highest IoU)
    of at least one generated shape (columns). Ties go to the lowest real index. A generator
    that always outputs one shape covers 1 / n_real; higher is better.

    `real_origin`: for rows drawn with repetition (a bootstrap), the original shape of each row;
    a row counts as covered when its original shape is the nearest of some generated shape."""
    nearest_real = iou_real_fake.argmax(axis=0)
    if real_origin is None:
        return len(np.unique(nearest_real)) / iou_real_fake.shape[0]
    return float(np.isin(real_origin, real_origin[nearest_real]).mean())


def one_nna_from_iou(iou_real_real: np.ndarray, iou_fake_fake: np.ndarray, iou_real_fake: np.ndarray,
                     origin: np.ndarray | None = None) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of telling real from generated shapes.

    Every shape of real U generated is classified by its nearest other shape (highest IoU, i.e.
    smallest 1 - IoU, itself excluded). Tie rule: a shape whose nearest IoU is shared by several
    others scores the fraction of them that have its own label (one nearest neighbour scores 1
    or 0; a tie between one real and one generated neighbour scores 1/2). The result is the mean
    score over all shapes. IoUs are correctly rounded ratios of exact counts, so ties are exact.

    0.5 is ideal (the sets are indistinguishable), 1.0 means fully separable. Identical sets
    (each real shape generated exactly once, no duplicates within a set) give exactly 0.0: every
    shape's only nearest neighbour (IoU 1) is its twin from the other set - memorisation scores
    below 0.5, which is why 1-NNA is compared with the 0.5 ideal and not minimised.

    `origin`: for shapes drawn with repetition (a bootstrap), an id per shape of real U generated
    (reals first); every copy of a shape is left out like the shape itself.
    """
    n_real, n_fake = iou_real_fake.shape
    if n_real + n_fake < 2:
        raise ValueError("1-NNA needs at least two shapes in all")
    joint = np.block([[iou_real_real, iou_real_fake], [iou_real_fake.T, iou_fake_fake]])
    if origin is None:
        np.fill_diagonal(joint, -np.inf)
    else:
        joint[origin[:, None] == origin[None, :]] = -np.inf
    nearest = joint == joint.max(axis=1, keepdims=True)
    is_real = np.arange(n_real + n_fake) < n_real
    same_label = is_real[:, None] == is_real[None, :]
    scores = (nearest & same_label).sum(axis=1) / nearest.sum(axis=1)
    return float(scores.mean())


def diversity_from_iou(iou_fake_fake: np.ndarray) -> float:
    """Mean 1 - IoU over pairs of distinct samples (off-diagonal entries). 0 for a collapsed
    generator; it needs at least two samples."""
    n = iou_fake_fake.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least two samples")
    off_diagonal = ~np.eye(n, dtype=bool)
    return float(np.mean(1.0 - iou_fake_fake[off_diagonal]))


# ---- metrics on volumes -------------------------------------------------------------------------


def iou_mmd(real: Volumes, fake: Volumes, *, device: str | torch.device | None = None) -> float:
    """See `mmd_from_iou`."""
    return mmd_from_iou(iou_matrix(real, fake, device=device))


def iou_cov(real: Volumes, fake: Volumes, *, device: str | torch.device | None = None) -> float:
    """See `cov_from_iou`."""
    return cov_from_iou(iou_matrix(real, fake, device=device))


def iou_1nna(real: Volumes, fake: Volumes, *, device: str | torch.device | None = None) -> float:
    """See `one_nna_from_iou`."""
    return one_nna_from_iou(
        iou_matrix(real, real, device=device), iou_matrix(fake, fake, device=device), iou_matrix(real, fake, device=device)
    )


def diversity(samples: Volumes, *, device: str | torch.device | None = None) -> float:
    """See `diversity_from_iou`."""
    return diversity_from_iou(iou_matrix(samples, samples, device=device))


def mean_occupancy(volumes: Volumes) -> float:
    """Fraction of occupied voxels, averaged over shapes."""
    return float(occupancy(volumes).float().mean())


def occupancy_ratio(real: Volumes, fake: Volumes) -> float:
    """Mean occupancy of generated shapes over that of real shapes: 1 is ideal, below 1 means the
    generator makes thinner or emptier shapes, above 1 fuller ones."""
    real_occupancy = mean_occupancy(real)
    if real_occupancy == 0:
        raise ValueError("the real shapes are all empty: occupancy ratio undefined")
    return mean_occupancy(fake) / real_occupancy


# ---- structure and memorisation ------------------------------------------------------------------

CONNECTIVITY = scipy.ndimage.generate_binary_structure(3, 3)
"""26-connectivity: voxels touching by a face, an edge or a corner are one part. Under it every
real chair at 32^3 and every procedural shape is a single part."""


def largest_part(grid: np.ndarray) -> np.ndarray:
    """The voxels of one bool (R, R, R) grid's largest connected part (all False when empty)."""
    labels, n_parts = scipy.ndimage.label(grid, structure=CONNECTIVITY)
    if not n_parts:
        return np.zeros_like(grid, dtype=bool)
    return labels == np.bincount(labels.ravel())[1:].argmax() + 1


def largest_part_shares(volumes: Volumes) -> np.ndarray:
    """Per shape, the share of its occupied voxels in its largest connected part: 1 for one solid
    piece, lower with floating debris or fragments; 0 for an empty shape (no shape at all)."""
    grids = occupancy(volumes).reshape(len(volumes), *np.shape(volumes)[-3:]).cpu().numpy()
    return np.array([largest_part(grid).sum() / grid.sum() if grid.any() else 0.0 for grid in grids])


def structure_metrics(real: Volumes, fake: Volumes) -> dict[str, float]:
    """Whether generated shapes are whole, as real ones are. part_share: mean share of a sample's
    voxels in its largest part (debris and fragments lower it); whole_share: the share of samples
    in one piece; structure_gap: the mean of how far each falls below the real shapes' own, 0
    ideal. IoU and a small classifier hardly see a few floating voxels; these do. Both halves
    count: part_share alone barely moves for a little debris, whole_share alone treats one stray
    voxel like a shattered shape."""
    return structure_from_shares(largest_part_shares(real), largest_part_shares(fake))


def structure_from_shares(real_shares: np.ndarray, fake_shares: np.ndarray) -> dict[str, float]:
    """`structure_metrics` from the shapes' `largest_part_shares`."""
    part, whole = float(fake_shares.mean()), float((fake_shares == 1.0).mean())
    part_gap = max(0.0, float(real_shares.mean()) - part)
    whole_gap = max(0.0, float((real_shares == 1.0).mean()) - whole)
    return {"part_share": part, "whole_share": whole, "structure_gap": (part_gap + whole_gap) / 2}


COPY_IOU = 0.95
"""A generated shape this close (IoU) to a training shape counts as a copy of it."""


def copy_share(shapes: Volumes, train: Volumes, *, device: str | torch.device | None = None) -> float:
    """The share of `shapes` whose best IoU with any training shape is at least COPY_IOU."""
    return float(copies(shapes, train, device=device).mean())


def copies(shapes: Volumes, train: Volumes, *, device: str | torch.device | None = None) -> np.ndarray:
    """Per shape, whether its best IoU with any training shape is at least COPY_IOU."""
    return iou_matrix(shapes, train, device=device).max(axis=1) >= COPY_IOU


def copy_gap(copy_share: float, reference: float) -> float:
    """How much more often samples copy a training shape than new draws of the data do."""
    return max(0.0, copy_share - reference)


def copy_share_within(train: Volumes, count: int = 200, *, device: str | torch.device | None = None) -> float:
    """Leave one out: the share of `count` evenly spaced training shapes whose best IoU with any
    *other* training shape is at least COPY_IOU. It is how often a new draw from the data's
    distribution is a near-copy of some shape in a set this size: the reference for copy_share.
    Test shapes cannot give it, since those identical to a training shape are dropped."""
    index = evenly_spaced_index(len(train), count)
    iou = iou_matrix(train[index], train, device=device)
    iou[np.arange(len(index)), index] = -1.0
    return float((iou.max(axis=1) >= COPY_IOU).mean())


def memorisation(fake: Volumes, train: Volumes, reference: float, *, device: str | torch.device | None = None) -> dict[str, float]:
    """How often samples are near-copies of training shapes (copy_share), beside how often new
    draws from the data are (copy_share_real, from `copy_share_within`). copy_gap =
    max(0, copy_share - copy_share_real): 0 unless G copies more than chance. Metrics against the
    test shapes alone would rate a generator that replays its training set as real data."""
    samples = copy_share(fake, train, device=device)
    return {"copy_share": samples, "copy_share_real": reference, "copy_gap": copy_gap(samples, reference)}


def voxel_metrics(real: Volumes, fake: Volumes, *, device: str | torch.device | None = None) -> dict[str, float]:
    """All IoU-based scores of generated shapes against real ones, each IoU matrix computed once:
    iou_mmd (lower is better), iou_cov (higher), iou_1nna (0.5 ideal), diversity (compare with
    the real shapes'), occupancy_ratio (1 ideal),
    and `structure_metrics`."""
    iou_rr = iou_matrix(real, real, device=device)
    iou_ff = iou_matrix(fake, fake, device=device)
    iou_rf = iou_matrix(real, fake, device=device)
    return {
        "iou_mmd": mmd_from_iou(iou_rf),
        "iou_cov": cov_from_iou(iou_rf),
        "iou_1nna": one_nna_from_iou(iou_rr, iou_ff, iou_rf),
        "diversity": diversity_from_iou(iou_ff),
        "occupancy_ratio": occupancy_ratio(real, fake),
        **structure_metrics(real, fake),
    }


def with_score(scores: dict[str, float]) -> dict[str, float]:
    """The metrics plus the gaps and the combined score, the single objective a search minimises;
    NaN in, NaN out (never a fake value).

    Each metric has an ideal point. `iou_1nna` and `c2st_acc` are ideal at 0.5 (a classifier
    cannot tell generated from real); below 0.5 is as suspicious as above (the generator copies
    the training set), so they enter as gaps, |x - 0.5| * 2, in [0, 1]. `score` is the mean of six
    terms in [0, 1], each 0 at the ideal:

        score = ( nna_gap + c2st_gap + iou_mmd + (1 - iou_cov) + structure_gap + copy_gap ) / 6   (lower is better)

    structure_gap (how much less whole the samples are than the real shapes: debris, fragments)
    sees what the IoU metrics and a small classifier hardly do on small evaluation sets; copy_gap
    (how much more often samples are near-copies of training shapes than test shapes are) keeps a
    generator that replays its training set from scoring like real data."""
    nna_gap = abs(scores["iou_1nna"] - 0.5) * 2
    c2st_gap = abs(scores["c2st_acc"] - 0.5) * 2
    terms = (nna_gap, c2st_gap, scores["iou_mmd"], 1 - scores["iou_cov"], scores["structure_gap"], scores["copy_gap"])
    return {**scores, "nna_gap": nna_gap, "c2st_gap": c2st_gap, "score": sum(terms) / len(terms)}


def real_reference(train: Volumes, test: Volumes, *, device: str | torch.device | None = None) -> dict[str, float]:
    """What real data scores: `voxel_metrics` with the test shapes as "real" and the training
    shapes as "generated", i.e. a generator that reproduces its training set perfectly.

    A trained generator is judged against this, not against 0: on the 3D ShapeNets chairs each
    test chair's nearest train chair has IoU 0.594 on average (iou_mmd about 0.41).
    """
    return voxel_metrics(test, train, device=device)


# ---- classifier two-sample test -----------------------------------------------------------------

C2ST_RESOLUTION = 32
"""The classifier sees shapes at most this large: bigger grids are average-pooled down first."""


def _c2st_classifier(resolution: int) -> nn.Sequential:
    """A small 3D CNN, real-vs-generated logit: avg-pool to <= 32^3, three stride-2 convolutions
    (8-16-32 channels), global average pool, linear head. Works for any resolution >= 8."""
    pool = max(1, resolution // C2ST_RESOLUTION)
    return nn.Sequential(
        nn.AvgPool3d(pool) if pool > 1 else nn.Identity(),
        nn.Conv3d(1, 8, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv3d(8, 16, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv3d(16, 32, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(32, 1),
    )


def _as_grids(volumes: Volumes) -> torch.Tensor:
    """(N, R, R, R) occupancy as a (N, 1, R, R, R) float tensor on the CPU."""
    flat = occupancy(volumes).cpu()
    resolution = round(flat.shape[1] ** (1 / 3))
    if resolution**3 != flat.shape[1]:
        raise ValueError(f"c2st needs cubic grids, got {flat.shape[1]} voxels per shape")
    return flat.float().reshape(-1, 1, resolution, resolution, resolution)


def c2st_right(
    real_train: Volumes,
    fake_train: Volumes,
    real_test: Volumes,
    fake_test: Volumes,
    *,
    epochs: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    lr: float = 2e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """The classifier two-sample test's verdicts: whether each of real_test and of fake_test is
    classified right, as two bool arrays (`c2st_acc` averages them; `voxgan.scoring` resamples them).

    A new `_c2st_classifier` is trained with Adam for `epochs` on real_train (label 1) against
    fake_train (label 0), balanced by keeping an equal number of each (a seeded random subset
    of the larger set), then applied to real_test and fake_test.

    Deterministic per `seed` on a given device: weights are initialised under a forked global
    RNG and shuffling uses a local generator, so the caller's RNG state is untouched.
    """
    device = torch.device(device)
    reals, fakes = _as_grids(real_train), _as_grids(fake_train)
    shuffle = torch.Generator().manual_seed(seed)
    n_each = min(len(reals), len(fakes))
    reals = reals[torch.randperm(len(reals), generator=shuffle)[:n_each]]
    fakes = fakes[torch.randperm(len(fakes), generator=shuffle)[:n_each]]
    inputs = torch.cat([reals, fakes])
    labels = torch.cat([torch.ones(n_each), torch.zeros(n_each)])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _c2st_classifier(inputs.shape[-1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=shuffle).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[batch].to(device)).squeeze(1), labels[batch].to(device))
            loss.backward()
            optimizer.step()

    model.eval()
    with torch.no_grad():
        real_right = _predictions(model, _as_grids(real_test), device, batch_size).numpy()
        fake_right = ~_predictions(model, _as_grids(fake_test), device, batch_size).numpy()
    return real_right, fake_right


def c2st_acc(real_train: Volumes, fake_train: Volumes, real_test: Volumes, fake_test: Volumes,
             **options) -> float:
    """Classifier two-sample test: how well a fresh discriminator tells generated from real
    (`c2st_right`), as balanced accuracy: the mean of the per-class accuracies, equal to plain
    accuracy when the test sets have equal size. 0.5 is ideal (indistinguishable), 1.0 means the
    generated shapes are trivially told apart. Unlike the GAN's own discriminator it cannot have
    co-adapted with the generator."""
    return balanced_accuracy(*c2st_right(real_train, fake_train, real_test, fake_test, **options))


def balanced_accuracy(real_right: np.ndarray, fake_right: np.ndarray) -> float:
    return (float(real_right.astype(np.float64).mean()) + float(fake_right.astype(np.float64).mean())) / 2


def _predictions(model: nn.Module, grids: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """True where the classifier calls a shape real (logit > 0)."""
    return torch.cat([model(part.to(device)).squeeze(1).cpu() > 0 for part in grids.split(batch_size)])
