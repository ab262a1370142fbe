"""Personal expressions: a person shows the model their own faces, and the model's reading of
that face is corrected by them from then on.

A `Profile` keeps, for each expression the person taught, the model's own log-probabilities of
a few frames of it: no picture of the face is kept, so a profile is small, readable JSON, and
belongs to the model that produced those numbers (another package, or new weights, needs a new
teaching: the numbers of one network mean nothing to another). A face's probabilities `p`:

1. are shifted by the person's bias. Each taught class c says what the person's face of c
   should read, `τ_c` (`target` on c, the rest shared by the other classes), against what the
   model read, the mean `m_c` of its examples; the log-ratios log(τ_c / m_c), averaged over the
   taught classes, reweight `p` class by class (renormalised). Taught neutral alone, this is
   the prior-shift correction of a classifier with the person's resting face as the new prior:
   the resting face reads `target` neutral, a departure from it moves the reading as before
   (neutral calibration is this case).
2. with two or more classes taught, are told apart by the nearest class mean in the model's
   log-probabilities: q_c ∝ exp(−‖log p − μ_c‖² / temperature) over the taught classes. q
   shares out, `weight` of it, the mass the shifted reading gives the taught classes; a class
   the person never taught keeps the shifted model's reading, so a face unlike every taught
   one still reads as the model says.

`Lessons` holds the profiles of the tracked faces and the frames being taught, for the
`Recognizer`. The figures behind `temperature` and `weight`: the trainer README's "Personal
expressions" section, with the command that measures them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.outputs import write_bytes

FORMAT = "fer-profile/1"
NEUTRAL = "neutral"
FLOOR = 1e-6  # the smallest probability taken into the logarithm


class ProfileError(ValueError):
    """A profile file that cannot be read, or a profile that does not fit the model."""


@dataclass(frozen=True)
class ProfileOptions:
    frames: int = 30  # frames of each taught expression (about a second of live video)
    target: float = 0.6  # what a taught example reads for its own class after the shift
    # (above the default "uncertain" threshold, 0.4, yet leaving room for a departure to win)
    temperature: float = 2.0  # of the nearest-class-mean reading (log-probability² units)
    weight: float = 1.0  # of that reading against the shifted model's, for taught classes

    def __post_init__(self) -> None:
        if self.frames < 1 or not 0 < self.target < 1 or self.temperature <= 0:
            raise ValueError(
                f"profile frames={self.frames}, target={self.target}, temperature="
                f"{self.temperature}: expected frames ≥ 1, target in (0, 1), temperature > 0"
            )
        if not 0 <= self.weight <= 1:
            raise ValueError(f"profile weight={self.weight}: expected a value in [0, 1]")


@dataclass(frozen=True)
class ModelKey:
    """The model a profile's numbers come from: a package and the sha256 of its weights."""

    package: str
    weights: str
    labels: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.package} (weights {self.weights[:12]})"


def _target(labels: Sequence[str], label: str, target: float) -> np.ndarray:
    wanted = np.full(len(labels), (1 - target) / (len(labels) - 1))
    wanted[list(labels).index(label)] = target
    return wanted


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, np.float64), FLOOR, None))


@dataclass(frozen=True)
class Profile:
    name: str
    model: ModelKey
    examples: Mapping[str, np.ndarray] = field(default_factory=dict)  # label → frames × classes
    # log-probabilities, in the model's label order

    def __post_init__(self) -> None:
        for label, values in self.examples.items():
            if label not in self.model.labels:
                raise ProfileError(
                    f"profile {self.name!r}: {label!r} is not a class of {self.model.package} "
                    f"({', '.join(self.model.labels)})"
                )
            if values.ndim != 2 or values.shape[1] != len(self.model.labels) or not len(values):
                raise ProfileError(
                    f"profile {self.name!r}: examples of {label!r} are {values.shape}; expected "
                    f"frames × {len(self.model.labels)} log-probabilities"
                )

    @property
    def taught(self) -> tuple[str, ...]:
        """The taught classes, in the model's order."""
        return tuple(label for label in self.model.labels if label in self.examples)

    def taught_with(self, label: str, probs: np.ndarray) -> Profile:
        """This profile with `label` taught (again) by these frames' probabilities."""
        examples = {**self.examples, label: log_probs(np.atleast_2d(probs))}
        return replace(self, examples=examples)

    # what the reading needs of the examples, computed once (a profile is frozen), not for
    # every face of every frame
    @cached_property
    def taught_index(self) -> list[int]:
        return [self.model.labels.index(label) for label in self.taught]

    @cached_property
    def means(self) -> np.ndarray:
        """μ_c: the mean log-probabilities of each taught class (taught × classes)."""
        return np.stack([self.examples[label].mean(axis=0) for label in self.taught])

    @cached_property
    def mean_log_probs(self) -> np.ndarray:
        """log m_c: the log of each taught class's mean probabilities (taught × classes)."""
        return log_probs(np.stack([np.exp(self.examples[label]).mean(axis=0)
                                   for label in self.taught]))  # fmt: skip

    def apply(self, probs: np.ndarray, options: ProfileOptions | None = None) -> np.ndarray:
        """Probabilities (classes last, any leading shape) read with this profile."""
        o = options or ProfileOptions()
        taught = self.taught_index
        if not taught:
            return np.asarray(probs, np.float64)
        logp = log_probs(probs)
        targets = np.log([_target(self.model.labels, label, o.target) for label in self.taught])
        shift = (targets - self.mean_log_probs).mean(axis=0)
        shifted = np.exp(logp + shift)
        shifted /= shifted.sum(axis=-1, keepdims=True)
        if len(taught) < 2 or o.weight == 0:
            return shifted
        distance = ((logp[..., None, :] - self.means) ** 2).sum(axis=-1)
        score = -distance / o.temperature
        q = np.exp(score - score.max(axis=-1, keepdims=True))
        q /= q.sum(axis=-1, keepdims=True)
        out = shifted.copy()
        mass = shifted[..., taught].sum(axis=-1, keepdims=True)
        out[..., taught] = (1 - o.weight) * shifted[..., taught] + o.weight * mass * q
        return out

    # ---- the file: small, versioned, human-readable ------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "model": {
                "package": self.model.package,
                "weights": self.model.weights,
                "labels": list(self.model.labels),
            },
            "representation": "the model's log-probabilities of each frame, labels' order",
            "examples": {
                label: [[round(float(v), 4) for v in row] for row in self.examples[label]]
                for label in self.taught
            },
        }

    def save(self, path: str | Path) -> Path:
        """Written whole or not at all (a partial file, then renamed)."""
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False)
        return write_bytes(path, (text + "\n").encode())

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> Profile:
        def fail(what: str) -> ProfileError:
            return ProfileError(f"{where}: {what}")

        if not isinstance(data, dict):
            raise fail("expected a JSON object (a profile saved by this app)")
        if data.get("format") != FORMAT:
            raise fail(f"format {data.get('format')!r}, expected {FORMAT!r}")
        name, model, examples = data.get("name"), data.get("model"), data.get("examples")
        if not isinstance(name, str) or not name.strip():
            raise fail("field 'name' should be a non-empty string")
        if not isinstance(model, dict):
            raise fail("field 'model' should be an object with package, weights and labels")
        package, weights, labels = (model.get(k) for k in ("package", "weights", "labels"))
        if not isinstance(package, str) or not isinstance(weights, str):
            raise fail("fields 'model.package' and 'model.weights' should be strings")
        if not (
            isinstance(labels, list) and len(labels) > 1 and all(isinstance(x, str) for x in labels)
        ):
            raise fail("field 'model.labels' should be a list of two or more class names")
        if not isinstance(examples, dict):
            raise fail("field 'examples' should map class names to lists of frames")
        arrays = {}
        for label, rows in examples.items():
            try:
                values = np.array(rows, dtype=np.float64)
            except (TypeError, ValueError):
                raise fail(f"examples of {label!r} should be lists of numbers") from None
            if values.ndim != 2 or values.shape[1] != len(labels) or not len(values):
                raise fail(f"examples of {label!r} should be frames of {len(labels)} numbers each")
            if not np.isfinite(values).all() or (values > 0).any():
                raise fail(f"examples of {label!r} should be log-probabilities (finite, ≤ 0)")
            arrays[label] = values
        try:
            return cls(name.strip(), ModelKey(package, weights, tuple(labels)), arrays)
        except ProfileError as error:
            raise fail(str(error).split(": ", 1)[1]) from None

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such profile file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"{path}: cannot be read ({error})") from None
        except json.JSONDecodeError as error:
            raise ProfileError(f"{path}: line {error.lineno}: not JSON ({error.msg})") from None
        return cls.from_dict(data, str(path))

    def check_model(self, model: ModelKey) -> None:
        """Refuse, in one line, to read a face with a profile taught on another model."""
        if self.model != model:
            raise ProfileError(
                f"profile {self.name!r} was taught on {self.model.describe()}; this recognizer "
                f"runs {model.describe()}: teach it again with this model"
            )


@dataclass
class Teaching:
    label: str
    frames: list[np.ndarray] = field(default_factory=list)


@dataclass
class Lessons:
    """Per track id: the profile a face is read with, and the frames being taught. A profile
    given for "the largest face" stays with the face it was given to while its track lives,
    then goes to the largest face of a later frame."""

    model: ModelKey
    options: ProfileOptions = field(default_factory=ProfileOptions)
    profiles: dict[int, Profile] = field(default_factory=dict)
    teaching: dict[int, Teaching] = field(default_factory=dict)
    floating: Profile | None = None  # for the largest face, not yet on one
    floating_on: int | None = None  # the track it went to
    waiting: dict[int, Profile] = field(default_factory=dict)  # for ids not yet seen
    taught: list[tuple[int, str]] = field(default_factory=list)  # completed, not yet taken

    def teach(self, track_id: int, label: str, name: str | None = None) -> int:
        """Take this face's next frames as its `label`; returns how many."""
        if label not in self.model.labels:
            raise ValueError(
                f"teach {label!r}: not a class of {self.model.package} "
                f"({', '.join(self.model.labels)})"
            )
        if track_id not in self.profiles:
            self.profiles[track_id] = Profile(name or f"face {track_id}", self.model)
        self.teaching[track_id] = Teaching(label)
        return self.options.frames

    def use(self, profile: Profile, track_id: int | None = None, upcoming: bool = False) -> None:
        """Read face `track_id` with `profile`; None: the largest face. `upcoming`: the id is
        of a face still to come, read with it from its first frame."""
        profile.check_model(self.model)
        if track_id is None:
            self.floating, self.floating_on = profile, None
        elif upcoming:
            self.waiting[track_id] = profile
        else:
            self.profiles[track_id] = profile

    def clear(self) -> None:
        """Forget every face's profile and teaching."""
        self.profiles.clear()
        self.teaching.clear()
        self.waiting.clear()
        self.floating = self.floating_on = None

    def keep_only(self, alive: Iterable[int]) -> None:
        """Drop what belongs to faces whose tracks ended (ids are never reused); a profile of
        the largest face is free for the next one."""
        alive = set(alive)
        for store in (self.profiles, self.teaching):
            for track_id in [k for k in store if k not in alive]:
                del store[track_id]
        if self.floating_on is not None and self.floating_on not in alive:
            self.floating_on = None

    def progress(self, track_id: int) -> tuple[str, float] | None:
        """The class being taught to this face and how far (0–1), or None."""
        teaching = self.teaching.get(track_id)
        if teaching is None:
            return None
        return teaching.label, len(teaching.frames) / self.options.frames

    def profile(self, track_id: int) -> Profile | None:
        return self.profiles.get(track_id)

    def profile_name(self, track_id: int) -> str | None:
        profile = self.profiles.get(track_id)
        return profile.name if profile is not None else None

    def take_taught(self) -> list[tuple[int, str]]:
        """(track id, label) of the teachings completed since the last call."""
        taught, self.taught = self.taught, []
        return taught

    def adjust(self, ids: Sequence[int], probs: np.ndarray, largest: int | None) -> np.ndarray:
        """This frame's probabilities of its faces (`ids` in the rows' order) read with their
        profiles; frames being taught are kept first. `largest`: the row of the largest face."""
        if self.floating is not None and self.floating_on is None and largest is not None:
            self.floating_on = ids[largest]
            self.profiles[ids[largest]] = self.floating
        out = np.array(probs, np.float64)
        for row, track_id in enumerate(ids):
            if track_id in self.waiting:
                self.profiles[track_id] = self.waiting.pop(track_id)
            teaching = self.teaching.get(track_id)
            if teaching is not None:
                teaching.frames.append(out[row].copy())
                if len(teaching.frames) >= self.options.frames:
                    del self.teaching[track_id]
                    self.taught.append((track_id, teaching.label))
                    profile = self.profiles[track_id]
                    self.profiles[track_id] = profile.taught_with(
                        teaching.label, np.stack(teaching.frames)
                    )
            profile = self.profiles.get(track_id)
            if profile is not None:
                out[row] = profile.apply(out[row], self.options)
        return out


def model_key(package: Any) -> ModelKey:
    """The `ModelKey` of a loaded package (`fer_core.zoo.Package`)."""
    sha = package.card.sha256
    weights = next((sha[f] for f in ("model.onnx", "model.pt") if f in sha), "")
    if not weights:  # a package written without hashes: its folder stands in for them
        weights = f"unhashed:{Path(package.path).resolve()}"
    return ModelKey(package.card.name, weights, tuple(package.card.labels))
