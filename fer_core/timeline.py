"""The recent history of each face's smoothed probabilities: what the app's emotion timeline
plots (the last 60 s of the selected face) and what a session summary reads.

Times are the frames' own (`FrameResult.time_s`: video position or seconds since the camera
started), so a paused or slow stream keeps its true time axis."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from fer_core.results import FrameResult

# faces one timeline picture draws (170 px each): more panels than this make a picture
# nobody reads; the rest are named at its bottom
PICTURE_FACES = 12


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

    def picture_faces(self, cap: int = PICTURE_FACES) -> tuple[list[int], str]:
        """The faces `picture` draws (the `cap` longest-seen, in id order) and, when some are
        left out, one line saying which and why ("" when every face is drawn)."""
        longest = sorted(self._tracks, key=lambda t: -len(self._tracks[t]))
        shown, left = sorted(longest[:cap]), sorted(longest[cap:])
        if not left:
            return shown, ""
        named = ", ".join(f"#{t}" for t in left[:10]) + (", …" if len(left) > 10 else "")
        return shown, (
            f"{len(left)} of {len(longest)} faces not drawn ({named}): the timeline draws the "
            f"{cap} longest-seen"
        )

    def picture(self, faces: int = PICTURE_FACES, width: int = 1000) -> np.ndarray:
        """The `faces` longest-seen faces' smoothed probabilities over time as a BGR picture:
        one panel per face, one line per class in the overlay colours, a legend, and a line
        at the bottom naming the faces left out, if any."""
        import cv2

        from fer_core.overlay import FONT, colour

        def text(image, words, x, y, scale=0.45, ink=(0, 0, 0)):
            cv2.putText(image, words, (round(x), round(y)), FONT, scale, ink, 1, cv2.LINE_AA)

        shown, left_out = self.picture_faces(faces)
        panel, left, legend, top = 170, 50, 110, 24
        footer = 30 + 22 * bool(left_out)
        image = np.full((max(1, len(shown)) * panel + footer, width, 3), 255, np.uint8)
        if not shown:
            text(image, "no faces", left, 40, 0.6)
            return image
        if left_out:  # in red above the time axis; cv2 has no "…" glyph
            text(image, left_out.replace("…", "..."), left, image.shape[0] - 30, ink=(0, 0, 200))
        start = min(self._tracks[t][0][0] for t in shown)
        span, plot_w, h = max(self.now - start, 1e-6), width - left - legend, panel - top - 16
        for i, label in enumerate(self.labels):  # legend
            y = top + 12 + 16 * i
            cv2.line(image, (width - legend + 10, y), (width - legend + 30, y), colour(label), 3)
            text(image, label, width - legend + 35, y + 4)
        for k, track_id in enumerate(shown):
            y0 = k * panel + top
            cv2.rectangle(image, (left, y0), (left + plot_w, y0 + h), (200, 200, 200), 1)
            text(image, f"face #{track_id}", left, y0 - 6, 0.5)
            for p in (0.0, 0.5, 1.0):
                text(image, f"{p:.1f}", 8, y0 + h * (1 - p) + 4, 0.4, (90, 90, 90))
            times, probs = self.series(track_id)
            xs = left + (times + self.now - start) / span * plot_w
            for i, label in enumerate(self.labels):
                points = np.stack([xs, y0 + h * (1 - probs[:, i])], axis=1)
                cv2.polylines(image, [points.round().astype(np.int32)], False, colour(label), 2,
                              cv2.LINE_AA)  # fmt: skip
        text(image, f"{start:.1f} s", left, image.shape[0] - 8)
        text(image, f"{self.now:.1f} s", left + plot_w - 45, image.shape[0] - 8)
        return image
