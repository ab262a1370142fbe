"""Issue 29: the overlays were drawn in source pixels, so a 1280×720 video's tags read 7 px high
in the window and a small photo's covered the face, and a face near the bottom got its bars
over it. Now the tag text has one height in the view whatever the source's size, an annotated
MP4's is a share of its frame, and a bar panel stays off every face and inside the frame."""

import numpy as np
import pytest

from fer_core.live import Shown, ViewOptions
from fer_core.overlay import (
    MIN_TEXT_PX,
    VIEW_TEXT_PX,
    OverlayStyle,
    draw,
    draw_scaled,
    panel_rect,
    scaled,
    tag_rect,
)
from fer_core.results import FaceResult, FrameResult

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GREY = 110


def face(track_id, box, label="happy", score=0.92):
    probs = {name: (score if name == label else (1 - score) / 6) for name in LABELS}
    return FaceResult(track_id, box, probs, probs, label, score)


def frame(size, *faces):
    w, h = size
    return np.full((h, w, 3), GREY, np.uint8), FrameResult(0, 0.0, w, h, faces)


def centred_face(size):
    """The same face in any frame: a fifth of its height, a little left of centre."""
    w, h = size
    return face(1, (round(0.3 * w), round(0.3 * h), round(0.2 * h), round(0.2 * h)))


def text_height(picture, rect):
    """Rows from the tag's highest to its lowest dark (text) pixel: black on the tag's colour."""
    x0, y0, x1, y1 = rect
    dark = np.flatnonzero((picture[y0:y1, x0:x1].max(axis=2) < 90).any(axis=1))
    return int(dark[-1] - dark[0] + 1)


def box_rect(f):
    x, y, w, h = f.box
    return x, y, x + w, y + h


def overlap(a, b):
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def inside(rect, size):
    return min(rect[:2]) >= 0 and rect[2] <= size[0] and rect[3] <= size[1]


def interior_untouched(picture, f, style):
    """The box's inside (within its line) is the frame's grey: no panel was drawn over it."""
    x, y, w, h = f.box
    m = style.line + 1
    return bool((picture[y + m : y + h - m, x + m : x + w - m] == GREY).all())


def test_the_style_is_sized_for_where_it_is_seen():
    assert OverlayStyle.for_view().text_px == VIEW_TEXT_PX
    assert 14 <= VIEW_TEXT_PX <= 18  # the tag text's height in a view
    assert OverlayStyle.for_view(2.0).text_px == 2 * VIEW_TEXT_PX  # a HiDPI screen's pixels
    # an MP4: a 640×480 frame keeps the 0.5 font scale it always had, 1080p scales with it
    assert OverlayStyle.for_frame(480).font_scale == pytest.approx(0.5, abs=0.03)
    assert OverlayStyle.for_frame(1080).text_px == pytest.approx(1080 / 480 * 14, rel=0.02)
    assert OverlayStyle.for_frame(120).text_px == MIN_TEXT_PX
    big = OverlayStyle.for_frame(1080)
    assert big.row > OverlayStyle().row and big.line > OverlayStyle().line


@pytest.mark.parametrize("view", [(800, 600), (480, 360)])
def test_tags_read_the_same_in_the_view_whatever_the_source_size(view):
    """The same face at 640×480 and 1920×1080 drawn into the same view: the tag's text is as
    high, in the pixels seen, as `VIEW_TEXT_PX` says."""
    heights = []
    for source in [(640, 480), (1920, 1080), (210, 260)]:
        image, result = frame(source, centred_face(source))
        k = min(view[0] / source[0], view[1] / source[1])
        size = (round(source[0] * k), round(source[1] * k))
        style = OverlayStyle.for_view()
        picture = draw_scaled(image, result, LABELS, size, style)
        assert picture.shape[:2] == size[::-1]
        heights.append(text_height(picture, tag_rect(scaled(result.faces[0], k), size[0], style)))
    assert max(heights) - min(heights) <= 1, heights
    assert 14 <= heights[0] <= VIEW_TEXT_PX + 2, heights


def test_an_annotated_frame_sizes_its_tag_to_the_frame():
    """No view: a 1080p frame's tag is as high a share of the frame as a 640×480 one's."""
    shares = []
    for source in [(640, 480), (1920, 1080)]:
        image, result = frame(source, centred_face(source))
        picture = draw(image, result, LABELS)
        rect = tag_rect(result.faces[0], source[0], OverlayStyle.for_frame(source[1]))
        shares.append(text_height(picture, rect) / source[1])
    assert shares[1] == pytest.approx(shares[0], rel=0.15)
    assert shares[0] * 480 >= 13  # 640×480 looks as it did


def test_the_window_view_draws_at_its_own_resolution(qtbot):
    from app.widgets import VideoView

    view = VideoView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    heights = []
    for source in [(640, 480), (1280, 720), (1920, 1080)]:
        image, result = frame(source, centred_face(source))
        view.show_frame(Shown(image, result, LABELS, ViewOptions(), "test", 0.0, 0))
        qimage = view.image
        assert qimage.width() == 800  # the frame fills the view's width, pixel for pixel
        bits = np.frombuffer(qimage.constBits(), np.uint8, qimage.sizeInBytes())
        picture = bits.reshape(qimage.height(), qimage.bytesPerLine())[:, : 800 * 3]
        picture = picture.reshape(qimage.height(), 800, 3)
        k = 800 / source[0]
        rect = tag_rect(scaled(result.faces[0], k), 800, OverlayStyle.for_view())
        heights.append(text_height(picture, rect))
    assert max(heights) - min(heights) <= 1, heights
    view.resize(400, 300)  # drawn again at the new size when painted, not stretched
    view.show()
    qtbot.waitUntil(lambda: view.image.width() == 400, timeout=5_000)


@pytest.mark.parametrize("source", [(640, 480), (1920, 1080), (210, 260)])
def test_a_face_at_the_bottom_gets_its_panel_above_it_inside_the_frame(source):
    w, h = source
    side = h // 4
    bottom = face(1, (w // 2 - side // 2, h - side - 2, side, side))
    image, result = frame(source, bottom)
    style = OverlayStyle.for_frame(h)
    tag = tag_rect(bottom, w, style)
    panel = panel_rect(bottom, tag, len(LABELS), source, style, [box_rect(bottom)])
    assert inside(panel, source) and overlap(panel, box_rect(bottom)) == 0
    assert panel[3] <= tag[1]  # above the tag, not over it
    assert interior_untouched(draw(image, result, LABELS), bottom, style)


def test_a_panel_goes_below_its_face_when_there_is_room():
    f = face(1, (100, 100, 100, 100))
    style = OverlayStyle()
    panel = panel_rect(f, tag_rect(f, 640, style), len(LABELS), (640, 480), style, [box_rect(f)])
    assert panel[:2] == (100, 200 + style.pad) and inside(panel, (640, 480))


@pytest.mark.parametrize(
    "boxes",
    [
        # one face right above another: the upper one's panel has no room below, or above
        [(50, 50, 80, 80), (50, 160, 80, 80)],
        # a 2×2 grid, close together, against the frame's edges
        [(10, 30, 90, 90), (10, 150, 90, 90), (540, 30, 90, 90), (540, 150, 90, 90)],
        # a row of five along the bottom of the frame
        [(10 + 126 * i, 380, 90, 90) for i in range(5)],
    ],
)
def test_a_panel_never_covers_a_face_when_there_is_room(boxes):
    faces = [face(i + 1, box) for i, box in enumerate(boxes)]
    image, result = frame((640, 480), *faces)
    style = OverlayStyle.for_frame(480)
    tags = [tag_rect(f, 640, style) for f in faces]
    rects = [box_rect(f) for f in faces]
    panels = []
    for f, tag in zip(faces, tags, strict=True):
        panel = panel_rect(f, tag, len(LABELS), (640, 480), style, rects, [*tags, *panels])
        panels.append(panel)
        assert inside(panel, (640, 480))
        assert all(overlap(panel, r) == 0 for r in rects), (f.box, panel)
    picture = draw(image, result, LABELS)
    assert all(interior_untouched(picture, f, style) for f in faces)
