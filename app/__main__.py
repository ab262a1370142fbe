"""`python -m app analyze | benchmark | cameras`: the headless fronts (no Qt)."""

import sys
from importlib import import_module

VERBS = {"analyze": "app.analyze", "benchmark": "app.benchmark", "cameras": "app.cameras"}


def main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in VERBS:
        return import_module(VERBS[argv[0]]).main(argv[1:])
    print(
        "usage: python -m app analyze VIDEO [--out ANNOTATED.mp4] [--csv FACES.csv] "
        "[--json FACES.jsonl] [--model NAME]\n"
        "       python -m app benchmark [--frames N]\n"
        "       python -m app cameras\n"
        "(the desktop window arrives with issue 4)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
