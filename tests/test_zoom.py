"""Small faces looked at again, magnified (`fer_core.zoom`), with the real detector on the demo
group: five faces side by side in a 640×480 frame."""

import cv2
import numpy as np
import pytest

from fer_core.demo import demo_frame
from fer_core.faces import FaceFinder, FaceOptions
from fer_core.zoom import MEMORY, SWEEP_EVERY, Detection, _new


@pytest.fixture(scope="module")
def finder():
    with FaceFinder(FaceOptions(max_faces=10)) as f:
        yield f


@pytest.fixture(scope="module")
def plain():
    with FaceFinder(FaceOptions(max_faces=10, zoom=False)) as f:
        yield f


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _found(finder: FaceFinder, width: int, frames: int) -> list[int]:
    if finder.zoom:
        finder.zoom.reset()  # a new video
    frame = [demo_frame(i, 5, label=False, face_width=width) for i in range(frames)]
    return [len(finder.find(f)[0]) for f in frame]


def test_every_face_of_a_40_px_group_is_found_in_every_frame(finder, plain):
    assert _found(finder, 40, 24) == [5] * 24
    assert sum(_found(plain, 40, 24)) < 5 * 24  # the full frame alone misses some


def test_a_face_too_small_for_the_whole_frame_is_found_by_the_sweep(finder, plain):
    # 35 px: the full frame finds these faces one time in six; the sweep tiles, then the
    # revisits, find them all
    found = _found(finder, 35, 4 * SWEEP_EVERY + 4)
    assert found[-4:] == [5] * 4
    assert sum(_found(plain, 35, 8)) < 20


def test_revisited_faces_land_where_the_full_frame_sees_them(finder):
    rgb = _rgb(demo_frame(0, 5, label=False, face_width=70))
    full = finder._detect(rgb)
    assert len(full) == 5
    again = finder.zoom._revisit(rgb, full)
    assert len(again) == 5
    for d in full:
        # the same place and size in frame pixels, up to the detector's own spread between
        # scales (magnified, its boxes are ~15 % larger)
        (match,) = [a for a in again if np.abs(a.centre - d.centre).max() < 5]
        assert 0.8 < match.box[2] / d.box[2] < 1.3
        assert np.abs(match.eyes - d.eyes).max() < 6


def test_sweep_tiles_land_where_the_full_frame_sees_them(finder):
    frame = np.full((480, 640, 3), 110, np.uint8)
    face = demo_frame(0, 1, label=False)[10:330, 10:230]  # one ~120 px face
    frame[20:340, 30:250] = face
    rgb = _rgb(frame)
    (full,) = finder._detect(rgb)
    (tile,) = finder.zoom._sweep(rgb, 0)  # the top-left tile holds it
    assert finder.zoom._sweep(rgb, 3) == []  # the bottom-right one does not
    assert np.abs(tile.centre - full.centre).max() < 5
    assert 0.8 < tile.box[2] / full.box[2] < 1.3
    assert np.abs(tile.eyes - full.eyes).max() < 6


def test_small_faces_are_forgotten_after_a_few_empty_frames_or_a_new_frame_size(finder):
    zoom = finder.zoom
    zoom.reset()
    finder.find(demo_frame(0, 5, label=False, face_width=40))
    assert len(zoom.memory) == 5
    blank = np.full((480, 640, 3), 110, np.uint8)
    for _ in range(MEMORY):
        finder.find(blank)
    assert zoom.memory == []
    finder.find(demo_frame(0, 5, label=False, face_width=40))
    finder.find(np.full((240, 320, 3), 110, np.uint8))  # another source
    assert zoom.memory == []


def test_a_detection_inside_one_already_found_is_not_new():
    def det(x, y, side, score=0.9):
        return Detection(np.array([x, y, side, side], float), score, np.zeros((2, 2)))

    found = [det(100, 100, 40)]
    same, other = det(105, 102, 38), det(300, 100, 40)
    assert _new(found, [same, other]) == [other]
    # of two new ones on the same spot, the surer is kept
    low, high = det(300, 100, 40, 0.6), det(302, 101, 40, 0.9)
    assert _new(found, [low, high]) == [high]


def test_the_short_range_detector_runs_without_zoom():
    with FaceFinder(FaceOptions(detector="short")) as short:
        assert short.zoom is None


def test_the_sweep_keeps_only_faces_the_short_range_detector_confirms(finder):
    """The shipped photo: the first frame's sweep also takes the collar of the spacesuit for a
    face (full-range score 0.56, as low as real distant faces); magnified for the short-range
    detector it is not one, and the photo has one face, as the README's example prints."""
    from fer_core.demo import DEMO_FACE

    photo = cv2.imread(str(DEMO_FACE))
    finder.zoom.reset()
    sweep = [d for quarter in range(4) for d in finder.zoom._sweep(_rgb(photo), quarter)]
    collar = [d for d in sweep if d.box[1] > photo.shape[0] / 2]
    assert collar and not finder._verify(_rgb(photo), collar[0])
    faces, _ = finder.find(photo, still=True)
    assert [f.box for f in faces] == [(48, 24, 112, 112)]
