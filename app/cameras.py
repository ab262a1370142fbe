"""`python -m app cameras`: the camera indices that open and deliver a frame."""

from __future__ import annotations

import argparse

from fer_core.capture import list_cameras


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app cameras", description=__doc__)
    parser.add_argument("--max-index", type=int, default=8, help="indices to try (8)")
    args = parser.parse_args(argv)
    found = list_cameras(args.max_index)
    if not found:
        print(f"no camera opens on this machine (tried indices 0–{args.max_index - 1})")
        return 1
    for index in found:
        print(f"camera {index}")
    return 0
