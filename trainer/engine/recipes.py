"""Training recipes: the papers' hyperparameters per family (Auto-FERNet, ZenNet-SA,
POSTER V2, Khaireddin & Chen) and this project's own, as data. Every field can be overridden
from the command line."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from fer_core.view import TTA

# the values a recipe's text fields take (also the choices of their flags)
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("sgd", "adam", "sam-adam"),
    "schedule": ("cosine", "exponential", "plateau", "constant"),
    "eval_tta": TTA,
    "kd_views": ("batch", "stored"),
}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = True  # False: weight decay on conv / linear weights only
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    lr_decay: float = 0.98  # exponential: lr × lr_decay per epoch
    plateau_factor: float = 0.75  # plateau: on validation top-1
    plateau_patience: int = 5
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(α, α); 0 = off
    aux_weight: float = 0.0  # Auto-FERNet auxiliary head
    drop_path: float = 0.0  # Auto-FERNet: ramps linearly to this over the run
    # the ramp as drop_path · (drop_path_from + epoch) / (drop_path_over or epochs): a fine-tune
    # (relabel training) continues the ramp of the run it starts from
    drop_path_from: int = 0
    drop_path_over: int = 0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    sam_rho: float = 0.05
    balanced: bool = False  # sample classes ∝ 1 / frequency (AffectNet in POSTER V2)
    # views: `*_size` in pixels (0 = the model's native size), `*_crop` the fraction of the stored
    # image the view covers at zoom 1
    train_size: int = 0
    train_crop: float = 1.0
    eval_size: int = 0
    eval_crop: float = 1.0
    eval_tta: str = "none"
    tencrop_train: bool = False  # VGG: all ten crops of each image are fed, label repeated
    zoom: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    shift_p: float = 1.0
    rotate: float = 0.0
    rotate_p: float = 1.0
    shear: float = 0.0  # degrees
    stretch: float = 0.0  # log width/height
    flip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0  # log gamma
    blur: float = 0.0  # Gaussian σ, output pixels
    blur_p: float = 1.0
    noise: float = 0.0  # Gaussian noise σ, pixels in [0, 1]
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)
    autoaugment: bool = False  # ImageNet policy, per image
    lighting: float = 0.0  # PCA lighting σ (RGB models)
    kd_temperature: float = 4.0  # distillation (`--teacher`): softening of both distributions
    kd_weight: float = 1.0  # distillation: weight of the T²-scaled KL term beside the CE
    # distillation: what the teachers see, "batch" (each augmented batch, every step) or
    # "stored" (each stored face once, unaugmented, before training: no teacher cost per step)
    kd_views: str = "batch"
    channels_last: bool = False  # (always on with CPU bf16, see `trainer.engine.step`)
    amp: bool = True  # bf16 autocast on CUDA (on CPUs: where native, see `--precision`)

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{flag} {getattr(self, name)!r}: expected one of {', '.join(allowed)}"
                )

    def drop_path_at(self, epoch: int) -> float:
        return self.drop_path * (self.drop_path_from + epoch) / (self.drop_path_over or self.epochs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """A recipe from its checkpointed dict; fields newer than the checkpoint keep their
        defaults, and pairs come back as tuples."""
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        if "lr_decay" not in data and data.get("schedule") == "exponential" and "gamma" in data:
            # before lr_decay had its own name, one `gamma` field served as both the schedule's
            # decay and the augmentation's log gamma: such a run resumes as it trained
            values["lr_decay"] = data["gamma"]
        return cls(**values)

    def override(self, **values: Any) -> Recipe:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"recipe has no field(s) {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


RECIPES: dict[str, Recipe] = {}


def _add(recipe: Recipe) -> None:
    RECIPES[recipe.name] = recipe


# fmt: off
_add(Recipe(
    name="autofernet",
    description="Auto-FERNet from scratch: SGD 0.025, cosine over 600 epochs, "
    "aux 0.4, drop-path to 0.2, clip 5, random 44 crops of 48 + flip, full 48 at test",
    epochs=600, batch_size=64, lr=0.025, weight_decay=3e-4,
    aux_weight=0.4, drop_path=0.2, grad_clip=5.0,
    train_size=44, train_crop=44 / 48, shift=2 / 48, eval_size=48, eval_crop=1.0,
    channels_last=True,  # oneDNN's separable and dilated convolutions are faster so on CPUs
))
_add(Recipe(
    name="zennet",
    description="ZenNet-SA: SGD-Nesterov 0.025, 5 warm-up epochs, cosine over "
    "400, wd 5e-4 on weights only, label smoothing 0.1 + mixup 0.2, resized crops + flip, "
    "AutoAugment (ImageNet policy), PCA lighting 0.1, erasing",
    epochs=400, batch_size=64, lr=0.025, nesterov=True, weight_decay=5e-4,
    decay_norm_and_bias=False, warmup_epochs=5, label_smoothing=0.1, mixup=0.2,
    zoom=(1.0, 1.118), erase_p=0.5, erase_area=(0.02, 0.1), autoaugment=True, lighting=0.1,
))
_add(Recipe(
    name="poster",
    description="POSTER V2: SAM(ρ 0.05) around Adam 3.5e-5, ×0.98 per epoch, "
    "200 epochs, batch 144, flip + erasing, no weight decay",
    epochs=200, batch_size=144, lr=3.5e-5, optimizer="sam-adam", schedule="exponential",
    lr_decay=0.98, erase_p=0.5, erase_area=(0.02, 0.1),
))
_add(Recipe(
    name="vgg",
    description="VGG baseline (Khaireddin & Chen): SGD-Nesterov 0.01, plateau ×0.75 on validation, "
    "300 epochs, resized crops, shifts, rotations, ten 40 crops per image in training and test",
    epochs=300, batch_size=64, lr=0.01, nesterov=True, weight_decay=1e-4, schedule="plateau",
    train_size=40, train_crop=1.0, eval_size=40, eval_crop=40 / 48, eval_tta="tencrop",
    tencrop_train=True, zoom=(0.913, 1.118), shift=0.2, shift_p=0.5, rotate=10, rotate_p=0.5,
    erase_p=0.5, erase_area=(0.02, 0.33), channels_last=True,
))
_add(Recipe(
    name="cpu-fast",
    description="this project's short schedule for a CPU: SGD-Nesterov 0.05, 1 warm-up epoch, "
    "cosine, label smoothing 0.1, one 40 crop per image with zoom, shift, rotation, flip, "
    "jitter and erasing (ten times cheaper than the VGG recipe per epoch)",
    epochs=60, batch_size=128, lr=0.05, nesterov=True, weight_decay=5e-4, warmup_epochs=1,
    label_smoothing=0.1, train_size=40, train_crop=40 / 48, eval_size=40, eval_crop=40 / 48,
    zoom=(0.9, 1.15), shift=0.1, rotate=10, brightness=0.2, contrast=0.2,
    erase_p=0.5, erase_area=(0.02, 0.15), channels_last=True,
))
_add(replace(
    RECIPES["cpu-fast"],
    name="cpu-strong",
    description="cpu-fast with stronger geometry (rotation 20°, zoom 0.8–1.25, shift 0.15, "
    "shear 10°, stretch ±16 %) and photometry (brightness and contrast 0.4, gamma e^±0.5, blur "
    "σ ≤ 1.2 px on 30 %, noise σ ≤ 0.05): for faces posed under other cameras and lights",
    zoom=(0.8, 1.25), shift=0.15, rotate=20, shear=10, stretch=0.15, brightness=0.4,
    contrast=0.4, gamma=0.5, blur=1.2, blur_p=0.3, noise=0.05,
))
_add(replace(
    RECIPES["cpu-fast"],
    name="cpu-long",
    description="cpu-fast at the research length: 300 epochs, resized crops (zoom 0.8–1.2), "
    "translation 0.2 on half the faces, rotation 10°, erasing p 0.5 up to a quarter of the face",
    epochs=300, zoom=(0.8, 1.2), shift=0.2, shift_p=0.5, erase_area=(0.02, 0.25),
))
_add(Recipe(
    name="ckplus-finetune",
    description="Auto-FERNet CK+ fine-tuning from a FER2013 checkpoint: SGD "
    "0.01794 (the README says 0.01), cosine over 60 epochs, batch 64, RandomCrop 44 of 48 + "
    "flip + ColorJitter(0.5, 0.5) (brightness here is additive: ±0.25 ≈ ×0.5–1.5 on a mid-grey "
    "face); `kfold` replaces the views with the checkpoint's own",
    epochs=60, batch_size=64, lr=0.01794, momentum=0.9, weight_decay=3e-4,
    train_size=44, train_crop=44 / 48, shift=2 / 48, eval_size=48, eval_crop=1.0,
    flip=True, brightness=0.25, contrast=0.5,
))
_add(Recipe(
    name="probe",
    description="the learnability probe of the ZenNet study: ZenNet's optimiser (SGD-Nesterov "
    "0.025, wd 5e-4 on weights only) over 6 epochs (2,694 steps of 64 on FER2013), half an epoch "
    "of warm-up, cosine; 48 px, flip and ±2 px shifts only, so that the network is what differs",
    epochs=6, batch_size=64, lr=0.025, nesterov=True, weight_decay=5e-4,
    decay_norm_and_bias=False, warmup_epochs=0.5, train_size=48, eval_size=48, shift=2 / 48,
    channels_last=True,  # oneDNN's depthwise convolutions are faster so on CPUs
))
# fmt: on

# How the network sees its input: kept from the trained network's own recipe when it is
# fine-tuned (k-fold); a package's card records them (`train.views`, with `tencrop_train`).
VIEW_FIELDS = ("train_size", "train_crop", "eval_size", "eval_crop", "eval_tta")

FAMILY_RECIPE = {"autofernet": "autofernet", "zennet": "zennet", "poster": "poster", "vgg": "vgg",
                 "mobilenet": "zennet"}  # fmt: skip


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
