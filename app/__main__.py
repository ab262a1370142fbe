"""`python -m app`: the desktop window (app.launch); `python -m app analyze | benchmark |
cameras`: the headless fronts (no Qt)."""

import sys
from importlib import import_module

VERBS = {"analyze": "app.analyze", "benchmark": "app.benchmark", "cameras": "app.cameras"}


def main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in VERBS:
        return import_module(VERBS[argv[0]]).main(argv[1:])
    return import_module("app.launch").main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
