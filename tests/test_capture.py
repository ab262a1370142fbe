"""Frame sources on real files the tests write: videos (whole, truncated, not a video), image
folders with a broken image, a capture device that stops and comes back, and the newest-frame
reader that drops what a slow consumer cannot take."""

import time

import cv2
import numpy as np
import pytest

from fer_core.capture import (
    CameraSource,
    ImageFolderSource,
    LatestFrame,
    SourceError,
    VideoSource,
    frames,
    open_source,
)


def write_video(path, count, size=(64, 48), fps=25.0, fourcc="MJPG"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(count):  # noise: every frame costs the same bytes, so truncation is exact
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def test_video_gives_every_frame_with_its_time(tmp_path):
    with VideoSource(write_video(tmp_path / "a.mp4", 20, fourcc="mp4v")) as source:
        got = list(frames(source))
        assert source.fps == pytest.approx(25.0)
        assert not source.events
    assert [f.index for f in got] == list(range(20))
    assert got[5].time_s == pytest.approx(0.2)
    assert got[0].image.shape == (48, 64, 3) and got[0].image.dtype == np.uint8


def test_truncated_video_ends_early_with_an_event(tmp_path):
    path = write_video(tmp_path / "cut.avi", 20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with VideoSource(path) as source:
        got = list(frames(source))
        assert 0 < len(got) < 20
        (event,) = source.events
        assert source.read() is None  # stays ended
    assert event.kind == "error"
    assert f"unreadable from frame {len(got)} of 20" in event.message
    assert "cut.avi" in event.message


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.mp4", None, "no such video file"),
        ("notes.mp4", b"not a video at all", "cannot be read as a video"),
    ],
)
def test_unreadable_video_names_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as error:
        VideoSource(path)
    assert name in str(error.value)


def test_image_folder_skips_a_broken_image_and_says_so(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((30, 40, 3), 50 * i, np.uint8))
    (tmp_path / "1b.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "readme.txt").write_text("not an image")
    with ImageFolderSource(tmp_path, fps=10) as source:
        got = list(frames(source))
        (event,) = source.events
    assert [f.index for f in got] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 50, 100]
    assert got[2].time_s == pytest.approx(0.2)
    assert "1b.png is not a readable image; skipped" in event.message


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path)


def test_open_source_picks_the_kind(tmp_path):
    video = write_video(tmp_path / "v.avi", 2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert isinstance(open_source(str(video)), VideoSource)
    assert isinstance(open_source(folder), ImageFolderSource)
    with pytest.raises(SourceError, match="expected a video file, a folder of images"):
        open_source(tmp_path / "nothing-here")
    with pytest.raises(SourceError, match="camera 97: cannot be opened"):
        open_source("camera:97")


def test_a_device_that_stops_delivering_is_reopened(tmp_path):
    # a video file as the device: at its end the "camera" stops delivering, and reopening
    # it brings frames again; the same path a real unplugged-and-replugged camera takes
    device = write_video(tmp_path / "cam.avi", 3)
    source = CameraSource(str(device), first_pause=0.01)
    got = [source.read() for _ in range(5)]
    source.close()
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    kinds = [e.kind for e in source.events]
    assert kinds == ["retry", "recovered"]
    assert "reopening in 0.01 s (try 1)" in source.events[0].message
    assert source.read() is None  # closed


def test_latest_frame_drops_what_a_slow_consumer_cannot_take(tmp_path):
    source = VideoSource(write_video(tmp_path / "long.avi", 150, size=(32, 24)))
    reader = LatestFrame(source)
    taken = []
    while (frame := reader.get(timeout=2.0)) is not None:
        taken.append(frame.index)
        time.sleep(0.01)
    reader.close()
    assert reader.ended
    assert taken == sorted(set(taken))  # never the same frame twice, never backwards
    assert reader.dropped > 0 and len(taken) + reader.dropped == 150


def test_demo_source_paces_labelled_frames_until_closed():
    from fer_core.demo import LABEL, DemoSource

    source = DemoSource(faces=2, fps=200.0)
    got = [source.read() for _ in range(3)]
    assert [f.index for f in got] == [0, 1, 2]
    assert got[2].time_s == pytest.approx(0.01)
    assert got[0].image.shape == (480, 640, 3)
    assert source.live and source.name == LABEL
    source.close()
    assert source.read() is None


def test_cameras_verb_says_when_none_opens(capsys):
    from app.__main__ import main

    code = main(["cameras", "--max-index", "1"])
    out = capsys.readouterr().out
    # CI machines have no camera; a developer's machine may have one at index 0
    assert (code, out) == (1, "no camera opens on this machine (tried indices 0–0)\n") or (
        code == 0 and out == "camera 0\n"
    )


def test_image_folder_reads_any_name_skips_what_is_no_whole_image_and_gives_stills(tmp_path):
    """Issue 31: a name that is not UTF-8 crashed OpenCV (segmentation fault), a FIFO named
    x.png hung the read, a truncated JPEG passed as a picture grey at the bottom, and a
    folder's unrelated photos were taken as a video's frames."""
    import os

    picture = np.full((30, 40, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "0.png"), picture)
    odd = os.fsdecode(b"1-caf\xe9.png")  # Latin-1 bytes: not UTF-8
    (tmp_path / odd).write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (tmp_path / "2-cut.jpg").write_bytes(jpeg[1].tobytes()[:1500])
    os.mkfifo(tmp_path / "3-pipe.png")
    with ImageFolderSource(tmp_path) as source:
        got = list(frames(source))
        said = [e.message for e in source.events]
    assert len(got) == 2 and all(f.still and f.image.shape == (30, 40, 3) for f in got)
    assert any("3-pipe.png is not a regular file; skipped" in m for m in said)
    assert any("2-cut.jpg is not a readable image; skipped" in m for m in said)


def test_a_video_name_opencv_cannot_take_is_one_error(tmp_path):
    import os

    video = write_video(tmp_path / "clip.avi", 3)
    odd = tmp_path / os.fsdecode(b"caf\xe9.avi")
    video.rename(odd)
    with pytest.raises(SourceError, match=r"caf\\xe9\.avi: the name is not valid UTF-8"):
        VideoSource(odd)
