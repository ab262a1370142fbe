"""`python -m app analyze VIDEO ...`: the headless front (no Qt needed)."""

import sys


def main(argv: list[str]) -> int:
    if argv[:1] == ["analyze"]:
        from app.analyze import main as analyze

        return analyze(argv[1:])
    print(
        "usage: python -m app analyze VIDEO [--out ANNOTATED.mp4] [--csv FACES.csv] "
        "[--json FACES.jsonl] [--model NAME]\n(the desktop window arrives with issue 4)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
