"""Neutral calibration: a person's resting face becomes their reference.

Expression models are trained on many faces, and a given person at rest can look "sad" or
"angry" to them every time (a low brow, a downturned mouth). Asked for by users of OpenFace
and of other tools, offered by none: for a few seconds the person holds a neutral face, the
mean of the model's probabilities over those frames is their baseline `b`, and from then on
every probability vector `p` of that face is reweighted, class by class, by `t / b` and
renormalised, where `t` is what a neutral face should read (`target` on neutral, the rest
shared by the other classes). The baseline itself then reads `t`, and any departure from it
(more happy than at rest, more surprise…) moves the reading the same way as before. This is
the prior-shift correction of a classifier's outputs, with the person's resting face as the
new prior.

`NeutralCalibrator` keeps this per track id; `Tracker.update(..., adjust=...)` applies it to
each face before smoothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

NEUTRAL = "neutral"


@dataclass(frozen=True)
class CalibrationOptions:
    frames: int = 60  # frames of the neutral face averaged (about 2-3 s of live video)
    target: float = 0.6  # what the calibrated neutral face reads for neutral (above the
    # default "uncertain" threshold, 0.4, yet leaving room for a departure to win)

    def __post_init__(self) -> None:
        if self.frames < 1 or not 0 < self.target < 1:
            raise ValueError(
                f"calibration frames={self.frames}, target={self.target}: expected frames ≥ 1 "
                "and target in (0, 1)"
            )


@dataclass(frozen=True)
class NeutralCalibration:
    baseline: np.ndarray  # the mean probabilities of the neutral face, label order
    weights: np.ndarray  # target / baseline

    @classmethod
    def from_samples(
        cls, samples: np.ndarray, labels: Sequence[str], target: float = 0.6
    ) -> NeutralCalibration:
        names = [label.lower() for label in labels]
        baseline = np.clip(np.asarray(samples, np.float64).mean(axis=0), 1e-6, None)
        wanted = np.full(len(names), (1 - target) / (len(names) - 1))
        wanted[names.index(NEUTRAL)] = target
        return cls(baseline, wanted / baseline)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, np.float64) * self.weights
        return p / p.sum(axis=-1, keepdims=True)


@dataclass
class NeutralCalibrator:
    """Per track id: the frames being collected, then the calibration applied."""

    labels: Sequence[str]
    options: CalibrationOptions = field(default_factory=CalibrationOptions)
    collecting: dict[int, list[np.ndarray]] = field(default_factory=dict)
    done: dict[int, NeutralCalibration] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return NEUTRAL in (label.lower() for label in self.labels) and len(self.labels) > 1

    def start(self, track_id: int) -> None:
        """Collect the next `options.frames` frames of this face as its neutral face."""
        if not self.available:
            raise ValueError(
                f"neutral calibration needs a model with a {NEUTRAL!r} class; this one has "
                f"{', '.join(self.labels)}"
            )
        self.collecting[track_id] = []
        self.done.pop(track_id, None)

    def clear(self, track_id: int | None = None) -> None:
        """Forget one face's calibration, or everyone's."""
        for store in (self.collecting, self.done):
            if track_id is None:
                store.clear()
            else:
                store.pop(track_id, None)

    def keep_only(self, alive: Iterable[int]) -> None:
        """Drop the calibrations of faces whose tracks ended (ids are never reused)."""
        alive = set(alive)
        for store in (self.collecting, self.done):
            for track_id in [k for k in store if k not in alive]:
                del store[track_id]

    def progress(self, track_id: int) -> float | None:
        """None: not calibrated; below 1: collecting; 1: calibrated."""
        if track_id in self.done:
            return 1.0
        if track_id in self.collecting:
            return len(self.collecting[track_id]) / self.options.frames
        return None

    def adjust(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """This frame's probabilities of the face, corrected once it is calibrated."""
        samples = self.collecting.get(track_id)
        if samples is not None:
            samples.append(np.asarray(probs, np.float64))
            if len(samples) >= self.options.frames:
                del self.collecting[track_id]
                self.done[track_id] = NeutralCalibration.from_samples(
                    np.stack(samples), self.labels, self.options.target
                )
        calibration = self.done.get(track_id)
        return probs if calibration is None else calibration.apply(probs)
