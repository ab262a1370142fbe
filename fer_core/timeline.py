"""The recent history of each face's smoothed probabilities: what the app's emotion timeline
plots (the last 60 s of the selected face) and what a session summary reads.

Times are the frames' own (`FrameResult.time_s`: video position or seconds since the camera
started), so a paused or slow stream keeps its true time axis."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from fer_core.results import FrameResult


class Timeline:
    def __init__(self, labels: Sequence[str], seconds: float = 60.0):
        self.labels = list(labels)
        self.seconds = seconds
        self.now = 0.0  # the newest frame's time
        self._tracks: dict[int, deque[tuple[float, np.ndarray]]] = {}

    def add(self, frame: FrameResult) -> None:
        if frame.time_s < self.now:  # the source restarted (new video, camera reopened)
            self._tracks.clear()
        self.now = frame.time_s
        for face in frame.faces:
            probs = np.array([face.probs[k] for k in self.labels], np.float32)
            self._tracks.setdefault(face.track_id, deque()).append((frame.time_s, probs))
        horizon = self.now - self.seconds
        for track_id in list(self._tracks):
            points = self._tracks[track_id]
            while points and points[0][0] < horizon:
                points.popleft()
            if not points:
                del self._tracks[track_id]

    def tracks(self) -> list[int]:
        return sorted(self._tracks)

    def series(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(seconds relative to now, ≤ 0; probabilities points × labels) of one face."""
        points = self._tracks.get(track_id)
        if not points:
            return np.zeros(0, np.float32), np.zeros((0, len(self.labels)), np.float32)
        times = np.array([t for t, _ in points], np.float32) - self.now
        return times, np.stack([p for _, p in points])

    def clear(self) -> None:
        self._tracks.clear()
        self.now = 0.0
