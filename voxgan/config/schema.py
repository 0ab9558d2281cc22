"""One typed config for a training run, loaded from and saved to YAML.

Validation is pydantic's: every model forbids unknown keys, so a typo is refused with the key's
dotted path instead of being silently ignored. The defaults are the tutorial's recipe
(SEED-SPEC), except the data: the embedded procedural shapes at 32^3, so that a config with no
data named trains anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from voxgan.config import dotted
from voxgan.config.data_keys import PROCEDURAL, active_keys, refuse_inert_keys, source_kinds
from voxgan.config.yaml_io import apply_overrides, read_yaml
from voxgan.errors import ConfigError, describe_validation_error

Activation = Literal["relu", "leaky_relu", "elu", "selu", "tanh", "sigmoid"]
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop", "adadelta"]
NormName = Literal["batch", "instance", "layer", "none"]
LossName = Literal["bce", "lsgan", "hinge", "wgan"]
Family = Literal["chair", "table", "lamp", "shelf", "sofa"]
"""The shape families the procedural source makes (`voxgan.data.procedural.BUILDERS`)."""
SHAPENETS_ROTATIONS = tuple(range(1, 13))
"""3D ShapeNets stores each model turned 12 times about the up axis, 30 degrees apart, as
`<name>_<n>.mat`; rotation 1 is the model as aligned in the data set (chairs face -x)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class DataConfig(_Strict):
    """Where the shapes come from and how they are prepared (docs/data.md).

    Each key acts on some kinds of source only (`data_keys.APPLIES_TO`); a key set to something
    other than its default for a source it cannot act on is refused, and left out of saved
    configs, so that a study or an exported config never carries a setting that does nothing.
    """

    source: str = PROCEDURAL
    """`procedural` (embedded shapes), a 3D ShapeNets `volumetric_data` folder, a voxel file
    holding many shapes (.npy, .npz, .npy.gz, .npz.gz), or a folder of voxel files (.npy, .npz,
    .npy.gz, .npz.gz, .binvox, .mat) at any depth."""
    category: str = "chair"
    """3D ShapeNets source: the category folder."""
    rotations: list[int] = list(SHAPENETS_ROTATIONS)
    """3D ShapeNets source: which of the 12 rotations of each model (the `_<n>.mat` suffix,
    30 degrees apart about the up axis) are loaded, train and test alike; [1] gives the aligned
    shapes the paper trained on."""
    resolution: Literal[16, 32, 64, 128] = 32
    """Edge of the voxel grid the networks work at (the tutorial: 64)."""
    up_axis: Literal["auto", "x", "y", "z", "-x", "-y", "-z"] = "auto"
    """File sources: the axis that points up in the files; shapes are turned so that it becomes
    z (axis 2). auto: each format's convention: .binvox y (ShapeNetCore), .npy/.npz/.mat z."""
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Leading fraction of the training shapes kept (the tutorial's obj_ratio)."""
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Held-out share for sources that have no train/test split of their own."""
    split: Literal["shapes", "files"] = "shapes"
    """File sources: shapes: each distinct shape goes to train or test at random (seeded by
    data.seed); files: whole files are held out at random, for files that hold related shapes."""
    pattern: str = "*"
    """Folder sources: only files whose path below the folder matches this glob are read
    (e.g. `*.solid.binvox`)."""
    max_files: int = Field(20000, ge=1)
    """Folder sources: refuse a folder with more voxel files than this (a mistyped source)."""
    n_shapes: int = Field(600, ge=10)
    """Procedural source: number of shapes generated (train + test)."""
    families: list[Family] = Field(["chair", "table", "lamp"], min_length=1)
    """Procedural source: the shape families mixed in the data set."""
    seed: int = 0
    """Procedural source: the shapes are a pure function of this seed; file sources: seeds the
    random train/test split."""
    classes: list[int] | None = None
    """Labelled files (an .npz with y_train / y_test): keep only shapes of these class indices,
    e.g. [2] for ModelNet10's chairs; None keeps every class."""
    class_names: list[str] | None = None
    """Labelled files: a name for each class index, in order (ModelNet10: bathtub, bed, chair,
    ...); None shows the indices."""
    cache_dir: str | None = None
    """3D ShapeNets source: where preprocessed arrays are cached; default $VOXGAN_CACHE or
    ~/.cache/voxgan."""

    @field_validator("rotations")
    @classmethod
    def _known_rotations(cls, rotations: list[int]) -> list[int]:
        if not rotations or any(n not in SHAPENETS_ROTATIONS for n in rotations):
            raise ValueError(f"rotations must be a non-empty list of numbers from 1 to {len(SHAPENETS_ROTATIONS)}")
        return sorted(set(rotations))

    @field_validator("classes")
    @classmethod
    def _class_indices(cls, classes: list[int] | None) -> list[int] | None:
        if classes is not None and (not classes or min(classes) < 0):
            raise ValueError("classes must be a non-empty list of class indices (0, 1, ...)")
        return None if classes is None else sorted(set(classes))

    @model_validator(mode="after")
    def _keys_act_on_the_source(self) -> DataConfig:
        # ConfigError is not a ValueError, so pydantic lets it through as the one-line message.
        refuse_inert_keys(self, source_kinds(self.source), ConfigError)
        return self

    @model_serializer(mode="wrap")
    def _without_inert_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in active_keys(source_kinds(self.source))}


class NetConfig(_Strict):
    """One network (generator or discriminator) and the optimiser that trains it."""

    width: int = Field(64, ge=1, le=1024)
    """Channels of the widest-resolution hidden layer; each halving of resolution doubles it
    (64 gives the tutorial's 64-128-256-512)."""
    extra_depth: int = Field(0, ge=0, le=8)
    """Stride-1 3x3x3 blocks added at 4^3 beyond the minimum the resolution needs."""
    activation: Activation = "relu"
    norm: NormName = "batch"
    """Normalisation after every hidden layer, never on the output layer (SEED-SPEC: batch).
    `instance` and `layer` (one group over channels and space) normalise each shape on its own,
    as a critic trained with a gradient penalty needs; `none` leaves the layers bare."""
    spectral_norm: bool = False
    """Spectral normalisation of every convolution (Miyato et al. 2018): each layer's largest
    singular value is kept near 1, bounding how fast D can change. Usually D only."""
    optimizer: OptimizerName = "adam"
    lr: float = Field(0.0025, gt=0.0, le=1e4)
    """Learning rate (tutorial: 0.0025 for G, 1e-5 for D)."""
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    """Adam/AdamW beta1."""
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    """Adam/AdamW beta2."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD and RMSprop momentum."""
    alpha: float = Field(0.99, gt=0.0, lt=1.0)
    """RMSprop smoothing constant; also Adadelta's rho."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """L2 penalty (decoupled for AdamW)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_batch_norm(cls, values: Any) -> Any:
        """Configs written before `norm` existed said `batch_norm: true/false`."""
        if isinstance(values, dict) and "batch_norm" in values and "norm" not in values:
            values = dict(values)
            values["norm"] = "batch" if values.pop("batch_norm") else "none"
        return values


ScheduleKey = Literal[
    "generator.lr", "discriminator.lr", "generator.beta1", "generator.beta2", "discriminator.beta1",
    "discriminator.beta2", "generator.momentum", "discriminator.momentum", "instance_noise", "ema_decay",
    "r1_gamma", "gradient_penalty",
]
"""The keys a schedule may change during a run: optimiser settings, instance noise, G's moving
average and D's penalties. None of them changes a network's shape, so a run can switch them at
any iteration (and population-based training can perturb them: `voxgan_search`)."""


class ScheduleEntry(_Strict):
    """From `kimg` thousand training shapes on, `key` takes `value`."""

    kimg: float = Field(gt=0.0)
    key: ScheduleKey
    value: float

    @property
    def shapes(self) -> int:
        """The training shapes after which it applies: at the first iteration that starts there or later."""
        return round(self.kimg * 1000)


class EvalConfig(_Strict):
    """How a trained generator is scored against held-out real shapes."""

    n_samples: int = Field(200, ge=2)
    """Generated shapes compared with the real test shapes."""
    max_real: int | None = Field(200, ge=2)
    """Cap on real test shapes used (evenly spaced, deterministic); None uses all."""
    c2st_epochs: int = Field(5, ge=1)
    """Epochs of the fresh classifier behind c2st_acc."""
    seed: int = 1234
    """Seed of the evaluation (samples, classifier); fixed so scores compare across runs."""
    probe: bool = False
    """Also measure probe_acc: a linear SVM on D's features classifies the labelled test shapes
    (needs labelled data and scikit-learn; a study turns it on when an objective is probe_acc)."""


NETWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    "generator": {"activation": "relu", "optimizer": "adam", "lr": 0.0025, "beta1": 0.5},
    "discriminator": {"activation": "leaky_relu", "optimizer": "adam", "lr": 1e-5, "beta1": 0.9},
}
"""The tutorial's settings where its two networks differ (SEED-SPEC); the rest are NetConfig's."""


class Config(_Strict):
    """A complete training run. `Config()` is the tutorial's recipe on the procedural shapes."""

    data: DataConfig = Field(default_factory=DataConfig)
    generator: NetConfig = Field(default_factory=lambda: NetConfig(**NETWORK_DEFAULTS["generator"]))
    discriminator: NetConfig = Field(default_factory=lambda: NetConfig(**NETWORK_DEFAULTS["discriminator"]))
    latent_size: int = Field(200, ge=1, le=4096)
    """Length of z (tutorial: 200)."""
    latent_dist: Literal["normal", "uniform"] = "normal"
    """normal: N(0, latent_std) (the tutorial); uniform: U(0, 1) (the paper)."""
    latent_std: float = Field(0.33, gt=0.0)
    """Standard deviation of z when latent_dist is normal (tutorial: 0.33)."""
    batch_size: int = Field(32, ge=1, le=4096)
    """Shapes per iteration; an epoch is len(train) // batch_size iterations."""
    epochs: int = Field(100, ge=1)
    """Passes over the training set (the tutorial suggests 100 to start); see kimg."""
    kimg: float | None = Field(None, gt=0.0)
    """Budget in thousands of real training shapes shown to D, as StyleGAN counts it; when set it
    replaces `epochs`, so that a budget means the same training on 288 shapes as on 10,668."""
    loss: LossName = "bce"
    """bce: binary cross-entropy from logits (the tutorial); lsgan: least squares on D's raw
    output; hinge: the hinge loss; wgan: the Wasserstein critic (use with gradient_penalty)."""
    real_label: float = Field(1.0, gt=0.5, le=1.0)
    """Target for real shapes in D's bce/lsgan loss; 0.9 gives one-sided soft labels."""
    d_accuracy_threshold: float | None = Field(None, gt=0.0, le=1.0)
    """The paper's rule: update D only when its accuracy on the last batch is below this."""
    d_steps: int = Field(1, ge=1, le=10)
    """D updates per G update, each on its own real batch (WGAN-GP: 5)."""
    gradient_penalty: float = Field(0.0, ge=0.0)
    """WGAN-GP's lambda: weight of E[(||grad D|| - 1)^2] between real and fake shapes; 0 is off.
    Needs a discriminator without batch norm (the penalty is per shape)."""
    r1_gamma: float = Field(0.0, ge=0.0)
    """R1 penalty gamma/2 * E||grad D(real)||^2 on real shapes; 0 is off."""
    instance_noise: float = Field(0.0, ge=0.0)
    """Std of Gaussian noise added to every volume D sees (real and fake): real voxels are exactly
    0 or 1 and G's never are, so without it D can tell them apart by softness alone."""
    instance_noise_kimg: float | None = Field(None, gt=0.0)
    """Fade instance noise linearly to 0 over this many thousand training shapes, so that D sees
    clean volumes, and G's stray voxels, at the end; None keeps it constant."""
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)
    """Exponential moving average of G's weights, updated after each G step with a warm-up
    (the decay is min(ema_decay, (1 + n) / (10 + n)) at step n); the average is what samples,
    evaluation and exported checkpoints use. 0 is off; 0.99-0.999 is typical."""
    g_output_init: Literal["zero", "occupancy"] = "zero"
    """Bias of G's output layer at start: zero (every voxel starts at 0.5) or the logit of the
    training set's mean occupancy, so G starts as sparse as the data (3-4% for chairs)."""
    g_upsample: Literal["transposed", "resize"] = "transposed"
    """How G doubles its grid: transposed (SEED-SPEC: 4^3 transposed convolutions of stride 2) or
    resize (nearest-neighbour upsampling and a 3x3x3 convolution, free of the checkerboard
    that overlapping transposed kernels print on the output)."""
    seed: int = 0
    """Seeds weight initialisation, shuffling and z: the same config and seed give the same run on CPU."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when there is one."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a CUDA GPU with fast bf16 (compute capability 8.0 and later), fp32
    elsewhere; samples are always made in fp32. The precision a search trial trained in is its
    `precision` attribute."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    schedule: list[ScheduleEntry] = []
    """Changes during the run, in kimg order: `{kimg: 6, key: instance_noise, value: 0.1}` after
    `instance_noise: 0.2` is "0.2 until 6 kimg, then 0.1". Each applies at the first iteration
    that starts at or after its kimg, so a run and its replay switch at the same step. Keys: either
    network's lr, beta1, beta2 and momentum, instance_noise, ema_decay, r1_gamma, gradient_penalty."""

    @model_validator(mode="before")
    @classmethod
    def _network_defaults_under_given_keys(cls, values: Any) -> Any:
        """A network section that gives some keys keeps that network's tutorial defaults for the
        others: `discriminator: {width: 16}` is the tutorial's D (lr 1e-5, beta1 0.9, LeakyReLU)
        at width 16, not a D with the generator's settings."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for name, defaults in NETWORK_DEFAULTS.items():
            if isinstance(values.get(name), dict):
                values[name] = {**defaults, **values[name]}
        return values

    @model_validator(mode="after")
    def _normalisation_fits(self) -> Config:
        if self.batch_size < 2 and "batch" in (self.generator.norm, self.discriminator.norm):
            raise ValueError("batch_size must be at least 2 when batch norm is on")
        if self.gradient_penalty > 0 and self.discriminator.norm == "batch":
            raise ValueError("gradient_penalty needs discriminator.norm other than batch (the penalty is per shape)")
        return self

    @model_validator(mode="after")
    def _schedule_fits(self) -> Config:
        kimgs = [entry.kimg for entry in self.schedule]
        if kimgs != sorted(kimgs):
            raise ValueError(f"schedule entries must be in kimg order, got kimg {kimgs}")
        for entry in self.schedule:
            try:
                self.in_effect(entry.shapes)
            except ConfigError as exc:
                raise ValueError(f"schedule entry at {entry.kimg:g} kimg ({entry.key}={entry.value:g}): {exc}") from None
        return self

    def in_effect(self, shapes_seen: int) -> Config:
        """The settings in effect once `shapes_seen` training shapes have been shown: every
        schedule entry due by then applied, in order (this config itself when none is due)."""
        due = [entry for entry in self.schedule if entry.shapes <= shapes_seen]
        if not due:
            return self
        values = self.to_dict()
        for entry in due:
            dotted.put(values, entry.key, entry.value)
        values["schedule"] = []
        return Config.from_dict(values)

    def switched(self, shapes_seen: int, values: dict[str, float]) -> Config:
        """This config with `values` taking effect at `shapes_seen` (a schedule entry for each key
        whose value in effect there differs): how population-based training's copy of a member
        continues under its new settings, and stays replayable from scratch."""
        now = self.in_effect(shapes_seen)
        entries = [{"kimg": shapes_seen / 1000, "key": key, "value": float(value)}
                   for key, value in values.items() if float(dotted.get(now, key)) != float(value)]
        if not entries:
            return self
        return Config.from_dict({**self.to_dict(), "schedule": [*self.to_dict()["schedule"], *entries]})

    # ---- YAML -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> Config:
        """Read a YAML config, apply `key=value` overrides, validate."""
        return cls.from_dict(apply_overrides(read_yaml(path), overrides or []))
