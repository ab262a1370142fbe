"""`python -m app` (or `fer-desktop`): the desktop window (app.launch); `analyze`,
`benchmark`, `cameras`: the headless fronts (no Qt)."""

import re
import sys
from importlib import import_module

from app.verbs import VERBS

# what the dynamic loader says when a system library is missing (OpenCV needs libGL, …)
NO_LIBRARY = re.compile(r"(lib[\w.+-]+\.so[.\d]*): cannot open shared object file")


def main(argv: list[str]) -> int:
    try:
        if argv[:1] and argv[0] in VERBS:
            return import_module(VERBS[argv[0]][0]).main(argv[1:])
        return import_module("app.launch").main(argv)
    except ImportError as error:
        found = NO_LIBRARY.search(str(error))
        if not found:
            raise
        from app.display import install_hint

        print(f"error: this machine lacks the system library {found.group(1)}; install with "
              f"`{install_hint([found.group(1)])}` (Debian/Ubuntu)", file=sys.stderr)  # fmt: skip
        return 2


def run() -> None:
    """The `fer-desktop` console command."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
