"""A headless pass on all cores: frames decoded ahead in one thread and results drawn and
written behind in another, while the engine works in between. OpenCV's decoding, encoding
and drawing release the GIL, so on 2 cores this takes decode and write off the engine's path.
Order is kept; an error in either thread is raised in the caller's."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """`items`, produced by a daemon thread up to `depth` ahead of the consumer."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        """Put `item` unless the consumer has stopped (then nobody would take it)."""
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_END)
        except BaseException as error:  # handed to the consumer, raised there
            offer(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator: its own stages end now, in this thread
                close()

    thread = threading.Thread(target=produce, name="read ahead", daemon=True)
    thread.start()
    try:
        while (item := box.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class Behind(Generic[T]):
    """`work(item)` for every `put` item, in order, in a daemon thread at most `depth` items
    behind. `finish()` waits for the last and raises the first error of `work`."""

    def __init__(self, work: Callable[[T], None], depth: int = 4):
        self.work = work
        self.box: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="write behind", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.box.get()) is not _END:
            if self.error is None:
                try:
                    self.work(item)
                except BaseException as error:
                    self.error = error

    def put(self, item: T) -> None:
        if self.error is not None:
            raise self.error
        self.box.put(item)

    def finish(self) -> None:
        self.box.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop after the item in hand (an error or Ctrl-C in the caller)."""
        self.error = self.error or RuntimeError("abandoned")
        self.box.put(_END)
        self.thread.join()
