"""The window's display widgets: the live view, the selected face's probabilities and its
emotion timeline. They only paint what they are given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from fer_core.live import Shown
from fer_core.overlay import OverlayStyle, colour, draw_scaled, scaled, tag_rect
from fer_core.results import FaceResult


def rgb(label: str) -> QColor:
    b, g, r = colour(label)
    return QColor(r, g, b)


def to_qimage(bgr: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels (the array may be reused after this)."""
    h, w = bgr.shape[:2]
    return QImage(bgr.data, w, h, bgr.strides[0], QImage.Format.Format_BGR888).copy()


class VideoView(QWidget):
    """The frame, scaled to fit with its aspect ratio kept, and its overlays drawn at the
    view's own resolution (labels read the same whatever the source's size); the selected face
    outlined. A click on a face selects it (`face_clicked` gives frame coordinates)."""

    face_clicked = Signal(float, float)
    painted = Signal()  # a frame is on screen (the window's layout ran before it)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.shown: Shown | None = None
        self.selected: FaceResult | None = None
        self.image: QImage | None = None  # the picture painted, in device pixels
        self.message = "Opening the source…"
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def show_frame(self, shown: Shown, selected: FaceResult | None = None) -> None:
        """`selected`: the face to outline (frame pixels), or None. The picture is drawn now,
        at the view's present size, and again whenever that size changes."""
        self.shown, self.selected = shown, selected
        self._render()
        self.update()

    def show_message(self, message: str) -> None:
        """Text shown when there is no frame (cleared by the next frame)."""
        self.shown, self.image, self.message = None, None, message
        self.update()

    def _target(self) -> QRectF:
        """Where the frame lands in the widget."""
        assert self.shown is not None
        fh, fw = self.shown.image.shape[:2]
        scale = min(self.width() / fw, self.height() / fh)
        return QRectF((self.width() - fw * scale) / 2, (self.height() - fh * scale) / 2,
                      fw * scale, fh * scale)  # fmt: skip

    def _device_size(self) -> tuple[int, int]:
        target, ratio = self._target(), self.devicePixelRatioF()
        return max(1, round(target.width() * ratio)), max(1, round(target.height() * ratio))

    def _render(self) -> None:
        shown, size = self.shown, self._device_size()
        style = OverlayStyle.for_view(self.devicePixelRatioF())
        picture = draw_scaled(shown.image, shown.result, shown.labels, size, style,
                              shown.view.bars, shown.view.landmarks)  # fmt: skip
        self.image = to_qimage(picture)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        if self.shown is None:
            painter.setPen(QColor(220, 220, 220))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            return
        if (self.image.width(), self.image.height()) != self._device_size():
            self._render()  # resized: drawn again, not stretched
        target = self._target()
        painter.drawImage(target, self.image)  # one image pixel per device pixel
        if self.selected is not None:  # around the face and its tag, never through them
            ratio = self.devicePixelRatioF()
            k = self.image.width() / self.shown.image.shape[1]
            style = OverlayStyle.for_view(ratio)
            region = selection_region(scaled(self.selected, k), self.image.width(), style)
            x0, y0, x1, y1 = (v / ratio for v in region)
            painter.setPen(QPen(QColor(255, 255, 255), 2, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(target.x() + x0 - 4, target.y() + y0 - 4,
                                    x1 - x0 + 8, y1 - y0 + 8))  # fmt: skip
        painter.end()
        self.painted.emit()

    def mousePressEvent(self, event) -> None:
        if self.shown is None:
            return
        target = self._target()
        p: QPointF = event.position()
        if target.contains(p):
            k = self.shown.image.shape[1] / target.width()
            self.face_clicked.emit((p.x() - target.x()) * k, (p.y() - target.y()) * k)


def selection_region(
    face: FaceResult, width: int, style: OverlayStyle
) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 around a face's box and its label tag drawn in `style` (pixels of a
    picture `width` wide)."""
    x, y, w, h = face.box
    tx0, ty0, tx1, _ = tag_rect(face, width, style)
    return min(x, tx0), min(y, ty0), max(x + w, tx1), y + h


class ProbabilityPanel(QWidget):
    """The selected face: its id and label, and one bar per class (smoothed) with its
    percentage beside it, right-aligned (not over the bar's colour)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("No face")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.grid = QGridLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.grid)
        self.bars: dict[str, QProgressBar] = {}
        self.percents: dict[str, QLabel] = {}

    def set_labels(self, labels: Sequence[str]) -> None:
        if list(self.bars) == list(labels):
            return
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.bars, self.percents = {}, {}
        for row, label in enumerate(labels):
            self.grid.addWidget(QLabel(label), row, 0)
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setTextVisible(False)
            bar.setFixedHeight(14)
            bar.setStyleSheet(
                "QProgressBar { border: 1px solid #888; border-radius: 2px; background: #f4f4f4; }"
                f"QProgressBar::chunk {{ background: {rgb(label).name()}; }}"
            )
            percent = QLabel("0 %")
            percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            percent.setMinimumWidth(percent.fontMetrics().horizontalAdvance("100 %") + 4)
            self.grid.addWidget(bar, row, 1)
            self.grid.addWidget(percent, row, 2)
            self.bars[label], self.percents[label] = bar, percent

    def show_face(self, face: FaceResult | None) -> None:
        if face is None:
            self.title.setText("No face")
            for label, bar in self.bars.items():
                bar.setValue(0)
                self.percents[label].setText("–")
            return
        state = f" · profile {face.profile}" if face.profile else ""
        if face.teaching is not None:
            label, done = face.teaching
            state += f" · learning {label} {done:.0%}: hold it"
        self.title.setText(f"Face #{face.track_id}: {face.label} ({face.score:.0%}){state}")
        for label, bar in self.bars.items():
            value = round(100 * face.probs.get(label, 0.0))
            bar.setValue(value)
            self.percents[label].setText(f"{value} %")

    def values(self) -> dict[str, int]:
        return {label: bar.value() for label, bar in self.bars.items()}


class EmotionTimeline(QWidget):
    """The selected face's smoothed probabilities over the last `seconds`, one line per class."""

    def __init__(self, seconds: float = 60.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.seconds = seconds
        self.plot = pg.PlotWidget(background=(30, 30, 30))
        self.plot.setXRange(-seconds, 0, padding=0)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.setLabel("bottom", "seconds")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.legend = QLabel()  # below the plot: a legend inside would hide its oldest part
        self.legend.setWordWrap(True)
        self.curves: dict[str, pg.PlotDataItem] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)

    def set_labels(self, labels: Sequence[str]) -> None:
        if list(self.curves) == list(labels):
            return
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {
            label: self.plot.plot([], [], pen=pg.mkPen(rgb(label), width=2)) for label in labels
        }
        self.legend.setText("&nbsp;&nbsp; ".join(
            f'<span style="color:{rgb(label).name()}">&#9644;</span>&nbsp;{label}'
            for label in labels
        ))  # fmt: skip

    def show_series(self, times: np.ndarray, probs: np.ndarray) -> None:
        # a line needs two points: a lone one (a photo, a video's first frame) shows as a dot
        symbol = "o" if len(times) == 1 else None
        for i, (label, curve) in enumerate(self.curves.items()):
            curve.setData(
                times, probs[:, i] if len(times) else [], symbol=symbol, symbolSize=7,
                symbolBrush=rgb(label), symbolPen=None,
            )  # fmt: skip

    def points(self) -> int:
        curves = list(self.curves.values())
        return len(curves[0].xData) if curves and curves[0].xData is not None else 0
