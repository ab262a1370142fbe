"""What the device passes' steps share: the lent machine's limits on what comes back, and how
a step reports."""

from __future__ import annotations

import re
from collections.abc import Callable

MIB = 2**20
MAX_BACK_FILES = 8  # what the device brings back from $OUT: 8 files of 16 MiB at most
MAX_BACK_PART_MIB = 16
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # the names it brings back (and logs' names)

Say = Callable[[str], None]


def say(text: str) -> None:
    print(text, flush=True)
