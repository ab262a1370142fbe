"""The headless pass's threads: order kept, errors raised in the caller, and a stop (an error,
Ctrl-C) ends every stage before the caller goes on."""

import threading
import time

import pytest

from fer_core.stages import Behind, read_ahead


def test_read_ahead_keeps_order_and_raises_the_producers_error():
    assert list(read_ahead(read_ahead(iter(range(50))))) == list(range(50))

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(read_ahead(broken()))


def test_closing_the_reader_ends_every_stage_before_it_returns():
    running = threading.Event()
    finished = []

    def source():
        try:
            for i in range(10_000):
                running.set()
                time.sleep(0.001)
                yield i
        finally:
            finished.append(threading.current_thread().name)

    reader = read_ahead((i * 2 for i in read_ahead(source())), depth=2)
    assert next(reader) == 0
    running.wait(5)
    reader.close()
    assert finished == ["read ahead"]  # the innermost stage closed, in its own thread


def test_behind_works_in_order_and_reports_its_first_error():
    done = []
    behind = Behind(done.append)
    for i in range(20):
        behind.put(i)
    behind.finish()
    assert done == list(range(20))

    def fail(item):
        raise ValueError(f"bad {item}")

    behind = Behind(fail)
    behind.put(1)
    with pytest.raises(ValueError, match="bad 1"):
        behind.finish()
