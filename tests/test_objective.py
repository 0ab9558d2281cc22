"""The objective ranks whole shapes above broken ones at the shipped studies' evaluation sizes, and
a generator that replays its training set does not look perfect.

"Samples" here are real shapes: held-out training shapes stand in for a perfect generator, and
the same shapes speckled, strewn with debris or cut apart stand in for the defects generators
show. Scored exactly as a trial is, with the default study's data and evaluation sizes.
"""

import numpy as np
import pytest
import scipy.ndimage

from voxgan_search.study.spec import load_study
from voxgan.data import load_dataset
from voxgan.metrics import copy_share_within
from voxgan.scoring import sample_scores
from voxgan.data.split import evenly_spaced

SPEC = load_study("default")


@pytest.fixture(scope="module")
def pools():
    """Disjoint draws of training shapes: samples, held-out samples, and the real shapes the
    classifier learns from; plus the test shapes and the whole training set."""
    data = load_dataset(SPEC.data)
    ev = SPEC.trial_config({}).eval
    test = evenly_spaced(data.test, ev.max_real)
    order = np.random.default_rng(0).permutation(len(data.train))
    n = ev.n_samples
    samples, heldout, learn = (data.train[order[i * n:(i + 1) * n]] for i in range(3))
    return samples, heldout[:len(test)], learn, test, data.train, ev


def score(samples, heldout, pools) -> dict[str, float]:
    _, _, learn, test, train, ev = pools
    return sample_scores(samples, heldout, test, learn, train, copy_share_within(train),
                         c2st_epochs=ev.c2st_epochs, seed=ev.seed)


@pytest.fixture(scope="module")
def fresh(pools):
    """New shapes from the same distribution (the procedural source with another seed): what a
    generator that learnt the data, and did not memorise it, would make."""
    samples, heldout = pools[0], pools[1]
    shapes = load_dataset(SPEC.data.model_copy(update={"seed": 1})).train
    return shapes[:len(samples)], shapes[len(samples):len(samples) + len(heldout)]


def speckled(shapes: np.ndarray) -> np.ndarray:
    """1% of the empty voxels switched on at random: scattered single-voxel debris."""
    return shapes | (np.random.default_rng(1).random(shapes.shape) < 0.01)


def strewn(shapes: np.ndarray) -> np.ndarray:
    """Six floating 2x2x1 fragments per shape, each away from the shape."""
    out, rng = shapes.copy(), np.random.default_rng(2)
    for shape in out:
        near = scipy.ndimage.binary_dilation(shape, iterations=2)
        placed = 0
        while placed < 6:
            x, y, z = rng.integers(0, shape.shape[0] - 1, 3)
            if not near[x:x + 2, y:y + 2, z].any():
                shape[x:x + 2, y:y + 2, z] = True
                near[max(0, x - 1):x + 3, max(0, y - 1):y + 3, max(0, z - 1):z + 2] = True
                placed += 1
    return out


def cut(shapes: np.ndarray) -> np.ndarray:
    """Two slabs removed through the middle: each shape falls apart into pieces."""
    out, mid = shapes.copy(), shapes.shape[-1] // 2
    out[:, :, :, mid - 1:mid + 1] = False
    out[:, mid - 1:mid + 1] = False
    return out


def test_whole_shapes_score_clearly_better_than_broken_ones(pools, fresh):
    intact = score(*fresh, pools)
    assert intact["part_share"] == 1.0 and intact["structure_gap"] == 0.0
    for defect in (speckled, strewn, cut):
        broken = score(defect(fresh[0]), defect(fresh[1]), pools)
        assert broken["part_share"] < 0.95, defect.__name__
        assert broken["score"] > intact["score"] + 0.03, (defect.__name__, broken["score"], intact["score"])


def test_a_generator_that_replays_its_training_set_is_not_perfect(pools, fresh):
    """Training shapes as samples score like real data on every IoU and classifier term; new
    shapes copy training shapes only about as often as chance, and score clearly better."""
    new, replay = score(*fresh, pools), score(pools[0], pools[1], pools)
    assert replay["copy_share"] == 1.0 and replay["copy_gap"] > 0.5
    assert new["copy_gap"] < 0.1
    assert replay["score"] > new["score"] + 0.05, (replay["score"], new["score"])
