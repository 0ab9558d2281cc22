"""The 3D-GAN paper's evaluation of a discriminator: a linear SVM on D's features classifies
labelled shapes (Wu et al. 2016, Table 1: ModelNet10 91.0%, ModelNet40 83.3%).

The recipe (docs/metrics.md, "The discriminator probe"):
- features: the responses (after normalisation and activation) of D's hidden blocks whose grid
  is at most 16^3, each max-pooled to 2^3 and flattened, concatenated. On the paper's 64^3 D these
  are its 2nd, 3rd and 4th convolution layers pooled with kernels 8, 4 and 2, as the paper says;
  a 32^3 D has blocks at 16^3, 8^3 and 4^3, the same grids.
- D runs in eval mode, with batch-norm statistics re-estimated on the training shapes first (in
  a fixed shuffled order): a shape's features then depend on it alone, not on its batch
  neighbours, and not on the running statistics of real and fake batches that training left.
- the classifier: features standardised on the training split, then scikit-learn's `LinearSVC`
  (solved in the primal, as for more shapes than features), its C chosen by stratified k-fold cross-validation on the training split only; the test split
  is touched once, to report accuracy and mean per-class accuracy.

scikit-learn is imported only inside `fit_probe`: training and searching never need it.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from voxgan.errors import VoxganError
from voxgan.models import MEMORY_FORMAT, Discriminator

PAPER_ACCURACY = {"ModelNet10": 0.910, "ModelNet40": 0.833}
"""Wu et al. 2016, Table 1: the linear SVM on an unsupervised 3D-GAN's D (64^3, ShapeNet)."""
FEATURE_GRID = 16
"""Hidden blocks whose output grid is at most this many voxels a side give features."""
POOLED_GRID = 2
"""Each block's response is max-pooled to this grid (8^3 voxels per channel)."""
C_GRID = (1e-4, 1e-3, 1e-2)
"""The SVM's regularisation strengths that cross-validation chooses from. On standardised
features of ModelNet10 it chose 1e-2 for every trained D of docs/results-modelnet10.md, from a
grid that also held 0.1; 0.1 scored below 1e-2 in cross-validation on the Ds timed (widths 16
and 32: 0.891 and 0.897 against 0.901 and 0.905 on a fold) and cost half of the probe's time
(a fold's fit 12 s and 145 s against 5 s and 20 s on a 2-core EPYC), so it is left out; C = 1 was
worse on the test split in every case tried."""
FOLDS = 5
EVAL_C_GRID = (1e-3, 1e-2)
EVAL_FOLDS = 3
"""The cheaper protocol of `probe_acc` at evaluation time (docs/metrics.md gives its cost)."""
CHUNK = 64


def calibrated(D: Discriminator, train: np.ndarray, device: torch.device, seed: int = 0) -> Discriminator:
    """A copy of D in eval mode whose batch-norm statistics are those of the training shapes:
    the running averages are reset and re-estimated over every training shape (a cumulative
    average, momentum None), in batches of CHUNK in a shuffled order fixed by `seed`."""
    D = copy.deepcopy(D).to(device)
    norms = [m for m in D.modules() if isinstance(m, nn.BatchNorm3d)]
    if norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        order = np.random.default_rng(seed).permutation(len(train))
        D.train()
        with torch.no_grad():
            for start in range(0, len(order), CHUNK):
                D(_as_input(train[np.sort(order[start:start + CHUNK])], device))
    return D.eval()


def _as_input(volumes: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(volumes, dtype=np.float32)).unsqueeze(1).to(
        device).contiguous(memory_format=MEMORY_FORMAT)


@torch.no_grad()
def d_features(D: Discriminator, volumes: np.ndarray, device: torch.device) -> tuple[np.ndarray, list[str]]:
    """(N, F) float32 features of (N, R, R, R) volumes: the responses of D's hidden blocks at
    grids of at most FEATURE_GRID, each max-pooled to POOLED_GRID^3, concatenated; and which
    blocks they are ("16^3 x 32"). D should be `calibrated` (eval mode)."""
    out, layout = [], []
    for start in range(0, len(volumes), CHUNK):
        x, parts, layout = _as_input(volumes[start:start + CHUNK], device), [], []
        for layer in list(D.layers)[:-1]:  # the last layer is the output convolution
            x = layer(x)
            if x.shape[-1] <= FEATURE_GRID:
                parts.append(nn.functional.adaptive_max_pool3d(x.float(), POOLED_GRID).flatten(1))
                layout.append(f"{x.shape[-1]}^3 x {x.shape[1]}")
        out.append(torch.cat(parts, 1).cpu().numpy())
    return np.concatenate(out), layout


@dataclass
class ProbeResult:
    """A fitted probe's figures on the test split."""

    accuracy: float
    mean_class_accuracy: float
    C: float
    """The regularisation strength cross-validation chose."""
    cv_accuracy: float
    """The chosen C's mean accuracy over the training split's folds."""
    confusion: list[list[int]]
    """Rows: true class, columns: predicted, over the classes present (`classes`)."""
    classes: list[int]
    n_train: int
    n_test: int
    n_features: int
    blocks: list[str] = field(default_factory=list)
    """The blocks whose pooled responses are the features, as "grid x channels"."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
              seed: int = 0, c_grid: tuple[float, ...] = C_GRID, folds: int = FOLDS, jobs: int = 1) -> ProbeResult:
    """Standardise, fit LinearSVC with C chosen by stratified `folds`-fold cross-validation on the
    training split only, then score the test split once. `jobs` processes fit the folds side by
    side (liblinear uses one core a fit; its primal solver is deterministic, so any `jobs` gives
    the same result); 1 inside a training run, whose cores are the trial's."""
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import balanced_accuracy_score, confusion_matrix
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC
    except ImportError:
        raise VoxganError("the probe needs scikit-learn: pip install 'voxgan[probe]' (or scikit-learn)") from None
    started = time.perf_counter()
    classes, counts = np.unique(train_y, return_counts=True)
    if len(classes) < 2:
        raise VoxganError(f"the probe needs shapes of at least 2 classes, and the training split has "
                          f"{len(classes)}")
    folds = int(min(folds, counts.min()))
    if folds < 2:
        raise VoxganError(f"class {classes[counts.argmin()]} has 1 training shape; the probe's "
                          f"cross-validation needs at least 2 of each class")
    search = GridSearchCV(make_pipeline(StandardScaler(), LinearSVC(dual=False, max_iter=5000)),
                          {"linearsvc__C": list(c_grid)}, scoring="accuracy",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=jobs)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search.fit(train_x, train_y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append("LinearSVC did not converge within 5000 iterations for some C")
    predicted = search.predict(test_x)
    present = sorted(set(classes) | set(np.unique(test_y)))
    return ProbeResult(
        accuracy=float((predicted == test_y).mean()), mean_class_accuracy=float(balanced_accuracy_score(test_y, predicted)),
        C=float(search.best_params_["linearsvc__C"]), cv_accuracy=float(search.best_score_),
        confusion=confusion_matrix(test_y, predicted, labels=present).tolist(), classes=[int(c) for c in present],
        n_train=len(train_x), n_test=len(test_x), n_features=int(train_x.shape[1]),
        seconds=time.perf_counter() - started, notes=notes)


def probe_discriminator(D: Discriminator, train: np.ndarray, train_y: np.ndarray, test: np.ndarray,
                        test_y: np.ndarray, device: torch.device, seed: int = 0, *,
                        c_grid: tuple[float, ...] = C_GRID, folds: int = FOLDS, jobs: int = 1) -> ProbeResult:
    """The whole protocol on one D: calibrate, extract features of both splits, fit and score.
    `seconds` counts all of it."""
    started = time.perf_counter()
    ready = calibrated(D, train, device, seed)
    (train_x, blocks), (test_x, _) = d_features(ready, train, device), d_features(ready, test, device)
    result = fit_probe(train_x, train_y, test_x, test_y, seed=seed, c_grid=c_grid, folds=folds, jobs=jobs)
    result.blocks = blocks
    result.seconds = time.perf_counter() - started
    return result
