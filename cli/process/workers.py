"""A process pool for `imgproc process` that survives its workers.

``concurrent.futures.ProcessPoolExecutor`` turns one dead worker (an
out-of-memory kill, a codec crash) into ``BrokenProcessPool`` for every file
still queued, and cannot stop one file that runs too long. Here each worker
has its own pipe and gets one job at a time, so the parent always knows which
file a worker holds: when the worker dies, or its file passes the time limit
(the worker is killed), that file fails and a fresh worker takes the next one.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from cli.errors import WorkerDied
from core.errors import ImageTimeout

# ``work(job) -> result``; ``failure(job, kind, message) -> result`` for a job the worker could not finish.
Work = Callable[[Any], Any]
Failure = Callable[[Any, str, str], Any]


def _serve(conn: Connection, work: Work) -> None:
    # Ctrl-C is the parent's to handle: it stops handing out files and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(work(job))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    job: Any = None
    started: float = 0.0


def _describe_death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"worker process was killed by {name}{hint}"
    return f"worker process exited with status {exitcode}"


class Pool:
    """``workers`` processes running ``work``, each file limited to ``seconds`` of wall time."""

    def __init__(self, workers: int, work: Work, failure: Failure, seconds: float):
        self.size, self.work, self.failure, self.seconds = workers, work, failure, seconds
        self.context = multiprocessing.get_context("fork")
        self.workers: list[_Worker] = []

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, self.work), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _stop(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()

    def run(self, jobs: list | tuple) -> Iterator[Any]:
        """Results as they finish (failures included); every worker is gone when this returns."""
        queue = list(reversed(jobs))
        try:
            while queue or any(w.job is not None for w in self.workers):
                self._hand_out(queue)
                yield from self._collect()
        finally:
            # Interrupted (Ctrl-C, an error in the caller): busy workers finish their
            # file within its time limit, so no output is left half-written.
            for worker in self.workers:
                if worker.job is not None:
                    left = max(0.0, worker.started + self.seconds - time.monotonic())
                    wait([worker.conn, worker.process.sentinel], left)
                if worker.process.is_alive():
                    try:
                        worker.conn.send(None)  # leave on its own
                    except OSError:
                        pass
                    worker.process.join(timeout=1)
                self._stop(worker)
            self.workers = []

    def _hand_out(self, queue: list) -> None:
        while len(self.workers) < min(self.size, len(self.workers) + len(queue)):
            self.workers.append(self._start())
        for worker in self.workers:
            if worker.job is None and queue:
                worker.job, worker.started = queue.pop(), time.monotonic()
                worker.conn.send(worker.job)

    def _collect(self) -> Iterator[Any]:
        busy = [w for w in self.workers if w.job is not None]
        now = time.monotonic()
        timeout = max(0.0, min(w.started + self.seconds for w in busy) - now) if busy else 0
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
        for worker in busy:
            if worker.conn in ready:
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):  # died while sending
                    yield self._replace(worker, WorkerDied.__name__, _describe_death(self._exitcode(worker)))
                    continue
                worker.job = None
                yield result
            elif worker.process.sentinel in ready:
                yield self._replace(worker, WorkerDied.__name__, _describe_death(self._exitcode(worker)))
            elif time.monotonic() - worker.started >= self.seconds:
                yield self._replace(worker, ImageTimeout.__name__,
                                    f"stopped after {self.seconds:g} s (limits.max_seconds); worker replaced")

    @staticmethod
    def _exitcode(worker: _Worker) -> int | None:
        worker.process.join(timeout=1)
        return worker.process.exitcode

    def _replace(self, worker: _Worker, kind: str, message: str) -> Any:
        """Fail the worker's file, end the worker, and put a fresh one in its place."""
        job = worker.job
        self._stop(worker)
        self.workers[self.workers.index(worker)] = self._start()
        return self.failure(job, kind, message)
