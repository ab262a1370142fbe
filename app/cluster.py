"""A batch's inputs (`app.batch`) analysed on a Dask cluster: a local one by default, or the
existing one whose scheduler `--scheduler ADDRESS` names. Needs the `cluster` extra
(`pip install -e ".[cluster]"`); `app.analyze` imports this module only for a batch.

Layout: a worker is a process with one task thread (`threads_per_worker=1`), so it analyses one
input at a time; its engine is loaded once, when the run registers `EngineSession` (a
WorkerPlugin) on it, and serves input after input (`Recognizer.restart` between them). Within
an input the stages run as in a single `analyze` (`fer_core.analysis`: decoding ahead,
detection, classification with `--threads` classifier threads, 1 by default, tracking, drawing
and writing behind). The local cluster has one worker per CPU, at most one per input.

Each worker tells the client its frames by an event at most twice a second (the progress
bars). A failed input comes back as its result, never as an exception, so it stops no other.
Unregistering the plugin (at the end, or on Ctrl-C) stops the input in hand at its next frame,
its partial files removed, before the engine closes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import dask
from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from app.batch import BatchOptions, BatchResult, Job, VideoResult, describe
from fer_core.analysis import AnalysisOptions, Progress, analyze_input
from fer_core.outputs import signals_handled
from fer_core.recognizer import Recognizer, RecognizerOptions

REPORT_EVERY_S = 0.5  # a worker's frames events: often enough for a bar, few for the scheduler
STOP_WAIT_S = 60.0  # how long a worker's teardown waits for the input in hand to stop
CONNECT_S = 10  # to reach an existing scheduler
WORKER_WAIT_S = 60  # for an existing cluster's first worker
TERMINAL = (signal.SIGINT, signal.SIGHUP)  # what a terminal sends its foreground processes


class Stopped(Exception):
    """The run is stopping: the input in hand ends, its files removed."""


class EngineSession(WorkerPlugin):
    """One `Recognizer` per worker process for the run, used by one input at a time."""

    def __init__(self, options: RecognizerOptions):
        self.options = options

    async def setup(self, worker) -> None:
        self.busy = threading.Lock()  # held by the engine's loading, then by each input
        self.stopping = threading.Event()
        with self.busy:  # in a thread: the worker keeps answering the scheduler meanwhile
            self.recognizer = await asyncio.to_thread(Recognizer, self.options)

    async def teardown(self, worker) -> None:
        self.stopping.set()
        # the input in hand stops at its next frame; the engine closes only once it has
        if await asyncio.to_thread(self.busy.acquire, timeout=STOP_WAIT_S):
            if hasattr(self, "recognizer"):  # not when its loading failed
                self.recognizer.close()
            self.busy.release()


class Reporter(Progress):
    """An input's frames, sent to the client as worker events; a stopping session stops it."""

    def __init__(self, worker, topic: str, index: int, stopping: threading.Event):
        self.worker, self.topic, self.index, self.stopping = worker, topic, index, stopping
        self.unsent = 0
        self.due = time.monotonic() + REPORT_EVERY_S

    def advanced(self, frames: int) -> None:
        if self.stopping.is_set():
            raise Stopped
        self.unsent += frames
        if time.monotonic() >= self.due:
            self.flush()

    def flush(self) -> None:
        if self.unsent:
            self.worker.log_event(self.topic, [self.index, self.unsent])
        self.unsent = 0
        self.due = time.monotonic() + REPORT_EVERY_S


def analyze_job(job: Job, analysis: AnalysisOptions, session: str, topic: str) -> VideoResult:
    """One input on the worker that runs this task, with the worker's engine."""
    worker = get_worker()
    name = str(worker.name)
    engine = worker.plugins.get(session)
    if engine is None:  # unregistered: the run ended before this input started
        return VideoResult(job, name, error="stopped before it started")
    with engine.busy:
        if engine.stopping.is_set():
            return VideoResult(job, name, error="stopped before it started")
        reporter = Reporter(worker, topic, job.index, engine.stopping)
        try:
            summary = analyze_input(job.path, job.outputs, analysis, reporter, engine.recognizer)
        except Stopped:
            return VideoResult(job, name, error="stopped; nothing written")
        except Exception as error:  # this input's failure, for the summary; the others go on
            return VideoResult(job, name, error=describe(error))
        finally:
            reporter.flush()
    return VideoResult(job, name, summary=summary)


@contextmanager
def connected(options: BatchOptions, inputs: int) -> Iterator[tuple[Client, str]]:
    """A client of the existing cluster, or of a local one started for the run (and closed
    after it), with words for the report."""
    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout=f"{CONNECT_S}s")
        except (OSError, ValueError) as error:
            raise OSError(f"--scheduler {options.scheduler}: cannot connect ({error})") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise OSError(f"--scheduler {options.scheduler}: no worker joined in "
                              f"{WORKER_WAIT_S} s; start some with `dask worker "
                              f"{options.scheduler}`") from None  # fmt: skip
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            yield client, f"the cluster at {options.scheduler} ({workers} workers)"
        return
    workers = min(options.workers or os.cpu_count() or 1, inputs)
    # one input per worker at a time, the rest queued at the scheduler: a worker that is done
    # takes the next, none waits behind a long video on another
    saturation = {"distributed.scheduler.worker-saturation": 1.0}
    # the worker processes start with Ctrl-C and a closed terminal's hang-up ignored (they
    # inherit it): a terminal signals its whole process group, and the client stops them in
    # order. The client ignores them too meanwhile, for these seconds.
    with dask.config.set(saturation), signals_handled(TERMINAL, signal.SIG_IGN):
        # its web server on any free port: 8787 may be another cluster's
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)  # fmt: skip
    with cluster, Client(cluster) as client:
        yield client, f"a local cluster of {workers} worker{'s' if workers > 1 else ''}"


def run_jobs(jobs: list[Job], options: BatchOptions, analysis: AnalysisOptions) -> BatchResult:
    """Every job on the cluster, each to its files; the table's figures."""
    from tqdm import tqdm

    run = uuid.uuid4().hex[:8]  # a shared cluster may run other batches beside this one
    session, topic = f"fer-engine-{run}", f"fer-frames-{run}"
    result = BatchResult()
    started = time.perf_counter()
    with ExitStack() as stack:
        client, result.workers = stack.enter_context(connected(options, len(jobs)))
        client.register_plugin(EngineSession(analysis.recognizer), name=session)
        stack.callback(client.unregister_worker_plugin, session)
        result.start_seconds = time.perf_counter() - started
        bars = dict(disable=not options.progress, dynamic_ncols=True)
        inputs = stack.enter_context(tqdm(total=len(jobs), unit="input", position=0, **bars))
        expected = sum(job.frames for job in jobs)
        frames = stack.enter_context(tqdm(total=expected, unit="frame", position=1, **bars))
        counted = [0] * len(jobs)  # frames told per job, until its result comes
        lock = threading.Lock()  # the events come in the client's event-loop thread

        def told(event: tuple[float, list[int]]) -> None:
            index, done = event[1]
            with lock:
                if counted[index] >= 0:
                    counted[index] += done
                    frames.update(done)

        client.subscribe_topic(topic, told)
        stack.callback(client.unsubscribe_topic, topic)
        running = time.perf_counter()
        submit = functools.partial(client.submit, analyze_job, pure=False)
        futures = {
            submit(job, analysis, session, topic, key=f"analyze-{run}-{job.index}"): job
            for job in jobs
        }
        stack.callback(client.cancel, list(futures))  # on Ctrl-C: the queued ones never start
        for future in as_completed(futures):
            job = futures[future]
            try:
                video = future.result()
            except Exception as error:  # its worker died (KilledWorker), or the cluster is gone
                video = VideoResult(job, "?", error=describe(error))
            with lock:  # the bar gets the input's true count, whatever its container said
                actual = video.summary.frames if video.summary else counted[job.index]
                frames.total += actual - job.frames
                frames.update(actual - counted[job.index])
                counted[job.index] = -1
            inputs.update()
            result.videos.append(video)
        result.seconds = time.perf_counter() - running
    return result
