"""Known answers for the IoU metrics and the classifier two-sample test."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from voxgan.metrics import (
    c2st_acc,
    diversity,
    iou_1nna,
    iou_cov,
    iou_matrix,
    iou_mmd,
    copy_share_within,
    largest_part_shares,
    memorisation,
    occupancy_ratio,
    one_nna_from_iou,
    real_reference,
    structure_metrics,
    voxel_metrics,
)


def box(res: int, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    """A (res, res, res) bool volume filled on [lo, hi) along each axis."""
    volume = np.zeros((res, res, res), dtype=bool)
    volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return volume


def random_boxes(n: int, res: int, seed: int, *, thin: bool = False, corner: str | None = None) -> np.ndarray:
    """n axis-aligned boxes of random size and place; `thin` makes 1x1 rods along the last
    axis; `corner` ("low"/"high") keeps every box inside one half-cube and around its centre
    voxel, so boxes of one corner always overlap and never meet those of the other."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, res, res, res), dtype=bool)
    half = res // 2
    for volume in out:
        if corner is None:
            lo = rng.integers(0, half, 3)
            size = rng.integers(max(1, res // 4), half, 3)
            if thin:
                size[:2] = 1
        else:
            centre = half // 2
            lo = rng.integers(0, centre + 1, 3)
            size = rng.integers(centre - lo + 1, half - lo + 1)
            if corner == "high":
                lo = lo + half
        volume[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = True
    return out


def brute_force_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            out[i, j] = np.logical_and(x, y).sum() / union if union else 1.0
    return out


def distinct_shapes(n: int = 12, res: int = 16, seed: int = 0) -> np.ndarray:
    shapes = random_boxes(n, res, seed)
    assert len(np.unique(shapes.reshape(n, -1), axis=0)) == n
    return shapes


# ---- iou_matrix --------------------------------------------------------------------------------


def test_iou_of_two_overlapping_boxes_is_hand_computed_value():
    a = box(8, (0, 0, 0), (4, 4, 4))  # 64 voxels
    b = box(8, (2, 0, 0), (6, 4, 4))  # 64 voxels, 32 shared -> union 96
    iou = iou_matrix(np.stack([a, b]), np.stack([a, b]))
    assert iou.shape == (2, 2)
    assert iou[0, 1] == iou[1, 0] == pytest.approx(1 / 3, abs=1e-12)
    assert iou[0, 0] == iou[1, 1] == 1.0


def test_empty_shape_conventions():
    empty = np.zeros((8, 8, 8), dtype=bool)
    full = box(8, (1, 1, 1), (3, 3, 3))
    iou = iou_matrix(np.stack([empty, full]), np.stack([empty, full]))
    np.testing.assert_array_equal(iou, [[1.0, 0.0], [0.0, 1.0]])


def test_iou_matrix_chunked_equals_unchunked_equals_brute_force():
    rng = np.random.default_rng(3)
    a = rng.random((7, 9, 9, 9)) < rng.random((7, 1, 1, 1))  # densities vary per shape
    b = rng.random((5, 9, 9, 9)) < 0.3
    a[2] = False  # an empty shape among the others
    expected = brute_force_iou(a, b)
    whole = iou_matrix(a, b)
    np.testing.assert_allclose(whole, expected, rtol=0, atol=1e-12)
    for chunk in (1, 2, 3, 100):
        np.testing.assert_array_equal(iou_matrix(a, b, chunk=chunk), whole)


def test_iou_matrix_accepts_torch_integers_and_probabilities_alike():
    shapes = distinct_shapes(6)
    expected = iou_matrix(shapes, shapes)
    probabilities = np.where(shapes, 0.9, 0.2).astype(np.float32)
    np.testing.assert_array_equal(iou_matrix(torch.from_numpy(shapes), shapes.astype(np.uint8)), expected)
    np.testing.assert_array_equal(iou_matrix(probabilities, torch.from_numpy(shapes)), expected)


def test_iou_matrix_refuses_mismatched_resolutions():
    with pytest.raises(ValueError, match="differ"):
        iou_matrix(np.zeros((2, 8, 8, 8), bool), np.zeros((2, 16, 16, 16), bool))


# ---- set metrics -------------------------------------------------------------------------------


def test_identical_sets_score_perfect_fidelity_and_zero_1nna():
    real = distinct_shapes()
    scores = voxel_metrics(real, real.copy())
    assert scores["iou_mmd"] == 0.0
    assert scores["iou_cov"] == 1.0
    assert scores["iou_1nna"] == 0.0  # every shape's only nearest neighbour is its twin
    assert scores["occupancy_ratio"] == 1.0
    assert scores["diversity"] == pytest.approx(diversity(real))


def test_set_against_itself_shuffled_scores_as_identical():
    real = distinct_shapes()
    shuffled = real[np.random.default_rng(1).permutation(len(real))]
    assert voxel_metrics(real, shuffled) == voxel_metrics(real, real)


def test_disjoint_families_are_fully_separable():
    real = random_boxes(10, 16, seed=0, corner="low")
    fake = random_boxes(10, 16, seed=1, corner="high")
    assert iou_matrix(real, fake).max() == 0.0
    assert iou_matrix(real, real).min() > 0.0
    assert iou_mmd(real, fake) == 1.0
    assert iou_1nna(real, fake) == 1.0
    assert diversity(np.concatenate([real[:1], fake[:1]])) == 1.0


def test_collapsed_generator_covers_one_shape_and_has_no_diversity():
    real = distinct_shapes(10)
    fake = np.repeat(real[3:4], 8, axis=0)
    assert iou_cov(real, fake) == pytest.approx(1 / 10)
    assert diversity(fake) == 0.0
    expected_mmd = np.mean(1.0 - iou_matrix(real, real[3:4])[:, 0])
    assert iou_mmd(real, fake) == pytest.approx(expected_mmd)


def test_1nna_tie_between_classes_scores_half():
    # Shape 0 (real) has two nearest neighbours at IoU 0.8: shape 1 (real) and shape 2 (fake).
    iou_rr = np.array([[1.0, 0.8], [0.8, 1.0]])
    iou_ff = np.array([[1.0]])
    iou_rf = np.array([[0.8], [0.1]])
    # scores: shape 0 -> 1/2 (tie), shape 1 -> 1 (nearest is real 0), shape 2 -> 0 (nearest is real 0)
    assert one_nna_from_iou(iou_rr, iou_ff, iou_rf) == pytest.approx(0.5)


def test_diversity_and_occupancy_ratio_of_known_boxes():
    a = box(8, (0, 0, 0), (4, 4, 4))
    b = box(8, (2, 0, 0), (6, 4, 4))
    assert diversity(np.stack([a, b])) == pytest.approx(2 / 3)
    half = box(8, (0, 0, 0), (2, 4, 4))
    assert occupancy_ratio(np.stack([a, b]), np.stack([half, half])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty"):
        occupancy_ratio(np.zeros((2, 8, 8, 8), bool), np.stack([a, b]))


def test_real_reference_treats_train_as_a_perfect_generator():
    train, test = distinct_shapes(10, seed=0), distinct_shapes(6, seed=1)
    assert real_reference(train, test) == voxel_metrics(test, train)


# ---- c2st ---------------------------------------------------------------------------------------


def test_c2st_cannot_tell_two_halves_of_one_distribution_apart():
    shapes = random_boxes(400, 16, seed=0)
    acc = c2st_acc(shapes[:100], shapes[100:200], shapes[200:300], shapes[300:], epochs=3)
    assert 0.3 <= acc <= 0.7


def test_c2st_tells_cubes_from_rods_and_is_deterministic_per_seed():
    cubes, rods = random_boxes(160, 16, seed=0), random_boxes(160, 16, seed=1, thin=True)
    args = (cubes[:100], rods[:100], cubes[100:], rods[100:])
    before = torch.get_rng_state()
    acc = c2st_acc(*args, epochs=3, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    assert acc >= 0.95
    assert c2st_acc(*args, epochs=3, seed=7) == acc


# ---- real chairs --------------------------------------------------------------------------------


def load_chairs(root: Path, split: str, count: int) -> np.ndarray:
    """The first `count` rotation-1 chairs of a split, padded 30^3 -> 32^3."""
    files = sorted((root / "chair" / "30" / split).glob("*_1.mat"))[:count]
    return np.stack([np.pad(scipy.io.loadmat(f)["instance"] > 0, 1) for f in files])


def test_real_chairs_iou(chairs_root):
    train, test = load_chairs(chairs_root, "train", 30), load_chairs(chairs_root, "test", 12)
    assert train.shape == (30, 32, 32, 32)
    iou = iou_matrix(train, train)
    np.testing.assert_array_equal(np.diag(iou), 1.0)
    assert 0 < iou[0, 1] < 1
    # The data holds exact duplicates (IoU 1) and disjoint pairs (IoU 0), e.g. chair_000000187 and
    # chair_000000208; most pairs overlap partly.
    off_diagonal = iou[~np.eye(len(train), dtype=bool)]
    assert ((off_diagonal >= 0) & (off_diagonal <= 1)).all()
    assert 0 < np.median(off_diagonal) < 1
    reference = real_reference(train, test)
    assert 0.2 < 1 - reference["iou_mmd"] < 0.9  # nearest train chair: IoU 0.594 with all 889
    assert reference["diversity"] > 0.2


def test_largest_part_share_counts_debris_and_fragments():
    solid = box(8, (1, 1, 1), (3, 3, 3))  # 8 voxels
    with_debris = solid.copy()
    with_debris[6, 6, 6] = True  # one floating voxel: 8 of 9 in the largest part
    corner_touching = box(8, (0, 0, 0), (2, 2, 2)) | box(8, (2, 2, 2), (4, 4, 4))  # one part under 26-connectivity
    halves = box(8, (0, 0, 0), (8, 8, 3)) | box(8, (0, 0, 5), (8, 8, 8))  # cut in two: 192 + 192
    empty = np.zeros((8, 8, 8), dtype=bool)
    shares = largest_part_shares(np.stack([solid, with_debris, corner_touching, halves, empty]))
    np.testing.assert_allclose(shares, [1.0, 8 / 9, 1.0, 0.5, 0.0])


def test_structure_metrics_compare_samples_with_whole_real_shapes():
    real = np.stack([box(8, (0, 0, 0), (k, 3, 3)) for k in range(1, 7)])  # bars along x, all in y, z < 3
    broken = real.copy()
    broken[:3, 7, 7, 7] = True  # debris on half of them, far from the bars
    assert structure_metrics(real, real) == {"part_share": 1.0, "whole_share": 1.0, "structure_gap": 0.0}
    scores = structure_metrics(real, broken)
    sizes = real[:3].reshape(3, -1).sum(axis=1)  # 9, 18, 27 voxels, plus one stray voxel each
    expected = (sum(n / (n + 1) for n in sizes) + 3) / 6
    assert scores["whole_share"] == 0.5 and scores["part_share"] == pytest.approx(expected)
    assert scores["structure_gap"] == pytest.approx(((1 - expected) + 0.5) / 2)


def test_memorisation_tells_copying_from_generalising():
    train = random_boxes(20, 8, 1)
    train[5] = train[4]  # one exact copy inside the training set
    reference = copy_share_within(train, count=20)
    assert reference == pytest.approx(2 / 20)  # shapes 4 and 5 each have a copy elsewhere in train
    copier = memorisation(train[:10], train, reference)
    assert copier["copy_share"] == 1.0 and copier["copy_gap"] == pytest.approx(1.0 - reference)
    new = memorisation(random_boxes(10, 8, 2), train, reference)
    assert new["copy_gap"] == max(0.0, new["copy_share"] - reference) < 0.5
