"""Running the blocks: in this process, on a local process pool, or on a dask.distributed cluster.

Each runner takes the ``WorkerSpec``, the store path, an iterator of ``(block, start, samples)`` tasks,
the ``BlockOptions`` and an ``on_done(result)`` callback called in this process with each block's
``run_block`` result, in the order the blocks finish.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import CancelledError

from .blocks import BlockOptions, WorkerSpec, run_block, warm_up, worker_model

__all__ = ["ClusterLost", "LocalPool", "run_in_process", "run_local", "run_dask"]


class ClusterLost(ConnectionError):
    """The Dask cluster lost its workers or its scheduler mid-run, or its scheduler had no workers for longer than
    ``no_workers_timeout`` (the finished blocks are in the store)."""


_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_in_process(spec: WorkerSpec, out: str, tasks, opts: BlockOptions, on_done) -> None:
    """The blocks one after the other in this process (``workers=1``)."""
    for b, start, smp in tasks:
        on_done(run_block(spec, out, b, start, smp, opts))


class LocalPool:
    """A local process pool, started in a background thread so that its start-up (the forkserver, each
    worker's imports and model) overlaps what this process does meanwhile (discovering the samples,
    preparing the store). ``executor()`` waits for it; ``close()`` shuts it down (also after an error).

    Workers use one BLAS thread each (the workers are the parallelism): the BLAS variables are set
    where the user set nothing, for the processes started now, and restored by ``close()``.
    """

    def __init__(self, workers: int, spec: WorkerSpec):
        import multiprocessing as mp
        import threading

        self.workers = workers
        if "forkserver" in mp.get_all_start_methods():
            self._ctx = mp.get_context("forkserver")
            # the forkserver (started once per process) imports the block code; each worker forked from it
            # starts with it imported ("__main__" stays first: the workers need the caller's script too)
            self._ctx.set_forkserver_preload(["__main__", "bfm.w300lp.blocks", "bfm.w300lp._kernels"])
        else:
            self._ctx = mp.get_context("spawn")
        self._saved = {k: os.environ.get(k) for k in _BLAS_ENV}
        for k in _BLAS_ENV:
            os.environ.setdefault(k, "1")
        self._ex, self._error = None, None
        self._thread = threading.Thread(target=self._start, args=(spec,), daemon=True, name="w300lp-pool-start")
        self._thread.start()

    def _start(self, spec: WorkerSpec) -> None:
        from concurrent.futures import ProcessPoolExecutor

        try:
            ex = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx, initializer=_init_worker,
                                     initargs=(spec, os.getpid()))
            self._ex = ex
            for _ in range(self.workers):  # each submit starts one process now (a pool starts them lazily)
                ex.submit(_ping)
        except BaseException as e:  # noqa: BLE001 - re-raised by executor()
            self._error = e

    def executor(self):
        """The started ``ProcessPoolExecutor`` (waits for the background start)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._ex

    def close(self) -> None:
        self._thread.join()
        try:
            if self._ex is not None:
                self._ex.shutdown(wait=True, cancel_futures=True)
        finally:
            for k, v in self._saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_local(pool: LocalPool, spec: WorkerSpec, out: str, tasks, opts: BlockOptions, on_done) -> None:
    """Blocks on a started ``LocalPool``, at most 2 * workers in flight (memory flat in the sample count)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    ex, workers = pool.executor(), pool.workers
    pending = set()
    it = iter(tasks)
    exhausted = False
    while True:
        while not exhausted and len(pending) < 2 * workers:
            try:
                b, start, smp = next(it)
            except StopIteration:
                exhausted = True
                break
            # the initializer built the model: each task names it by its token only
            pending.add(ex.submit(run_block, spec.token, out, b, start, smp, opts))
        if not pending:
            break
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in sorted(finished, key=lambda f: f.result()[0]):
            on_done(f.result())


def _ping(seconds: float = 0.02) -> int:
    """A worker's pid, after ``seconds`` (so that pings spread over the workers)."""
    time.sleep(seconds)
    return os.getpid()


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its parent, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def _init_worker(spec: WorkerSpec, parent_pid: int | None = None) -> None:
    """Worker start-up: build the model once, warm the block code up; exit if the parent job dies (a killed job leaves no
    orphan workers holding its files)."""
    if parent_pid is not None:
        import threading

        ppid0 = os.getppid()  # the job itself, or the forkserver it started

        def watch():
            while True:
                time.sleep(0.25)
                if os.getppid() != ppid0 or not _alive(parent_pid):
                    os._exit(1)

        threading.Thread(target=watch, daemon=True, name="w300lp-parent-watch").start()
    worker_model(spec)
    warm_up()


_POLL = 0.5  # seconds between looks at the scheduler while no block finishes


def run_dask(scheduler, spec: WorkerSpec, out: str, tasks, opts: BlockOptions, on_done, *, window: int,
             no_workers_timeout: float | None = 300.0) -> None:
    """The same blocks on a dask.distributed cluster, at most ``window`` in flight.

    Finished futures come back through a queue (each future's done callback puts it there); while none
    finishes, the scheduler is asked for its workers every ``_POLL`` seconds, and once it has had none
    for longer than ``no_workers_timeout`` seconds (None: wait forever) the run ends with ``ClusterLost``.
    """
    import queue

    from meshkit._optional import require

    distributed = require("dask.distributed", "preprocess(scheduler=...) on a Dask cluster")
    from distributed.comm import CommClosedError
    own = not isinstance(scheduler, distributed.Client)
    client = distributed.Client(scheduler) if own else scheduler
    pending, finished = set(), queue.SimpleQueue()  # the futures in flight; those done, as they finish
    n_done, lost = 0, False
    seen = time.monotonic()  # when the scheduler last had a worker (or a block finished)

    def workers_present() -> bool:
        nonlocal seen
        now = time.monotonic()
        if client.nthreads():
            seen = now
            return True
        if no_workers_timeout is not None and now - seen > no_workers_timeout:
            raise ClusterLost(
                f"the Dask scheduler {client.scheduler.address} has had no workers for {now - seen:.1f} s "
                f"({n_done} block(s) of this run finished); the finished blocks are in the store {out!r}: "
                "rerunning the same command resumes from them; no_workers_timeout (--no-workers-timeout) sets "
                "how long to wait for workers")
        return False

    def submit(b, start, smp):
        fut = client.submit(run_block, payload, out, b, start, smp, opts, key=f"w300lp-{out}-{b}", pure=False)
        fut.add_done_callback(finished.put)
        pending.add(fut)

    try:
        while not workers_present():  # the model is scattered to the workers there are: wait for one
            time.sleep(_POLL)
        payload = client.scatter(spec, broadcast=True)
        it = iter(tasks)
        for b, start, smp in it:
            submit(b, start, smp)
            if len(pending) >= window:
                break
        while pending:
            try:
                fut = finished.get(timeout=_POLL)
            except queue.Empty:
                workers_present()
                continue
            pending.discard(fut)
            on_done(fut.result())
            n_done += 1
            seen = time.monotonic()
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                submit(*nxt)
    except (CancelledError, distributed.KilledWorker, CommClosedError) as e:
        lost = True
        what = " ".join(f"{type(e).__name__}: {str(e).split('. ')[0]}".split())[:300]  # one line
        raise ClusterLost(f"the Dask cluster lost its workers or scheduler after {n_done} block(s) of this run "
                          f"finished ({what}); the finished blocks are in the store {out!r}: rerunning the same "
                          "command resumes from them") from e
    finally:
        if own:
            _close_client(client, quiet=lost)


def _close_client(client, *, quiet: bool) -> None:
    """Close our client; after a lost cluster, without distributed's log of the reconnect it abandons
    (``ClusterLost`` already says what happened)."""
    import logging

    log = logging.getLogger("distributed.client")
    level = log.level
    if quiet:
        log.setLevel(logging.CRITICAL)
    try:
        client.close(timeout=10)
    except Exception:  # noqa: BLE001 - the cluster is gone already: nothing to close cleanly
        pass
    finally:
        log.setLevel(level)
