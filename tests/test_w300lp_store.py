"""The 300W-LP store as a file-system object: what readers see (xarray, dask.array, zarr, with named
dimensions, no foreign objects, no warnings), the job's exclusive lock (two real processes), atomic
creation under a kill at chosen instants, old-format and damaged stores, absolute paths for Dask
workers and a lost Dask cluster. Every case where a process may die runs that process in a
subprocess; the hooks that kill it wrap a module function from the child's own code.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from bfm import w300lp
from bfm.synthetic import small_model
from bfm.synthetic_300wlp import write_synthetic_300wlp

SIZE = 32
BLOCK = 2
DIMS = {"images": ("sample", "row", "col", "channel"), "vertices": ("sample", "vertex", "xyz"),
        "landmarks2d": ("sample", "landmark", "xy"), "landmarks3d": ("sample", "landmark", "xyz"),
        "status": ("sample",), "ids": ("sample",), "pose": ("sample", "angle")}


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def tree(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("w300lp_store") / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=1, image_size=160, face_px=70, seed=3)
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tree, model):
    """An uninterrupted run of the command the kill tests run (workers=1: bit-identical reruns)."""
    out = tmp_path_factory.mktemp("clean") / "s.zarr"
    w300lp.preprocess(tree, out, model=model, size=SIZE, workers=1, block_size=BLOCK, progress=False)
    return out


def _run(tree, out, **kw):
    return w300lp.preprocess(tree, out, **{"model": small_model(), "size": SIZE, "workers": 1, "block_size": BLOCK,
                                           "progress": False, **kw})


def _child(code: str, *, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def _preprocess_code(tree, out, hook: str = "") -> str:
    """A child that runs the same command as ``clean``, after ``hook`` (code wrapping a function)."""
    return f"""
import os
from bfm import w300lp
from bfm.synthetic import small_model
from bfm.w300lp import runners, store
{hook}
w300lp.preprocess({str(tree)!r}, {str(out)!r}, model=small_model(), size={SIZE}, workers=1, block_size={BLOCK},
                  progress=False)
"""


def _assert_same_arrays(a, b):
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for k in ga.array_keys():
        np.testing.assert_array_equal(ga[k][:], gb[k][:], err_msg=k)
    assert ga.attrs["config"] == gb.attrs["config"] and ga.attrs["failures"] == gb.attrs["failures"]
    assert ga.attrs["complete"] is True


def _resume_matches(tree, out, clean):
    """Rerun the same settings in process: it resumes from the finished blocks and gives the fresh run's
    images exactly and its vertices up to float32 summation order (another worker count)."""
    s = _run(tree, out)
    assert s.blocks_resumed >= 1
    g, ref = zarr.open_group(str(out), mode="r"), zarr.open_group(str(clean), mode="r")
    np.testing.assert_array_equal(g["images"][:], ref["images"][:])
    np.testing.assert_allclose(g["vertices"][:], ref["vertices"][:], rtol=1e-5, atol=1e-3)


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name))


# ---------------------------------------------------------------------------------------------
# readers


def test_xarray_dask_and_zarr_read_the_store_with_named_dimensions(clean):
    xr = pytest.importorskip("xarray")
    import dask.array as da

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ZarrUserWarning about foreign objects, no consolidation warning
        members = dict(zarr.open_group(str(clean), mode="r").members())
        ds = xr.open_zarr(clean)
    assert all(isinstance(v, zarr.Array) for v in members.values())  # nothing but arrays in the hierarchy
    g = zarr.open_group(str(clean), mode="r")
    n = g["ids"].shape[0]
    for name, dims in DIMS.items():
        assert ds[name].dims == dims, name
        assert zarr.open_array(str(clean / name), mode="r").metadata.dimension_names == dims
        np.testing.assert_array_equal(ds[name].values, g[name][:])
        a = da.from_zarr(str(clean), component=name)
        assert a.shape == g[name].shape and a.chunks[0][0] == g[name].chunks[0]
    np.testing.assert_array_equal(da.from_zarr(str(clean), component="vertices").compute(), g["vertices"][:])
    assert ds.sizes["sample"] == n and ds.sizes["xyz"] == 3 and ds.sizes["landmark"] == 68
    assert ds.sizes["row"] == ds.sizes["col"] == SIZE and ds.sizes["channel"] == 3
    assert [str(x) for x in ds["ids"].values] == sorted(str(x) for x in g["ids"][:])


# ---------------------------------------------------------------------------------------------
# old and damaged stores


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_a_store_in_the_previous_format_is_refused_with_the_fix(tmp_path, tree, clean):
    old = tmp_path / "old.zarr"
    shutil.copytree(clean, old)
    g = zarr.open_group(str(old), mode="r+", use_consolidated=False)
    g.attrs["config"] = {**g.attrs["config"], "format": "meshkit-300wlp-1"}
    zarr.consolidate_metadata(str(old))
    with pytest.raises(ValueError, match=r"older format .*overwrite=True"):
        _run(tree, old)
    with pytest.raises(ValueError, match=r"older format .*overwrite=True"):
        w300lp.open_store(old)
    s = _run(tree, old, overwrite=True)
    assert s.blocks_resumed == 0
    _assert_same_arrays(old, clean)


def test_a_store_missing_arrays_is_reported_as_damaged(tmp_path, tree, clean):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(clean, broken)
    for name in ("images", "landmarks2d"):  # what two unlocked concurrent jobs once left
        shutil.rmtree(broken / name)
    with pytest.raises(ValueError, match=r"damaged: .*missing arrays images, landmarks2d; rerun with overwrite=True"):
        _run(tree, broken)
    _run(tree, broken, overwrite=True)
    _assert_same_arrays(broken, clean)


# ---------------------------------------------------------------------------------------------
# the lock


@pytest.mark.slow
def test_a_second_job_is_refused_naming_the_first(tmp_path, tree, clean, model):
    """Two real processes: the first holds the lock (paused inside its run), the second, the CLI, exits
    2 with one line naming the first job's pid and host; the first then finishes normally."""
    from bfm.formats import save_npz

    out, ready, go = tmp_path / "s.zarr", tmp_path / "ready", tmp_path / "go"
    hook = f"""
import time
from pathlib import Path
run = runners.run_in_process

def paused(*a, **k):
    Path({str(ready)!r}).touch()
    t = time.monotonic()
    while not Path({str(go)!r}).exists() and time.monotonic() - t < 120:
        time.sleep(0.05)
    run(*a, **k)

runners.run_in_process = paused
"""
    first = subprocess.Popen([sys.executable, "-c", _preprocess_code(tree, out, hook)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        t = time.monotonic()
        while not ready.exists() and first.poll() is None and time.monotonic() - t < 120:
            time.sleep(0.05)
        assert ready.exists(), first.communicate()[1][-2000:]
        lock = json.loads((tmp_path / "s.zarr.lock").read_text())
        assert lock["pid"] == first.pid and lock["host"] == socket.gethostname() and "command" in lock
        npz = save_npz(tmp_path / "model.npz", model)
        second = _child("import sys; from meshkit.cli import main; sys.exit(main(['preprocess-300wlp', "
                        f"{str(tree)!r}, '--out', {str(out)!r}, '--model', {str(npz)!r}, '--size', '{SIZE}', "
                        f"'--block-size', '{BLOCK}', '--workers', '1', '--no-progress']))")
        assert second.returncode == 2, second.stderr[-2000:]
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and f"pid {first.pid} on host {socket.gethostname()}" in err[0], second.stderr
        go.touch()
        _, err1 = first.communicate(timeout=180)
        assert first.returncode == 0, err1[-2000:]
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
            first.wait()
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]  # the lock is gone


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, tree, clean):
    out = tmp_path / "s.zarr"
    code = ("import os; from pathlib import Path; from bfm.w300lp.store import store_lock\n"
            f"with store_lock(Path({str(out)!r})):\n    print(os.getpid(), flush=True); os._exit(0)")
    r = _child(code)
    dead_pid = int(r.stdout.split()[0])
    assert json.loads((tmp_path / "s.zarr.lock").read_text())["pid"] == dead_pid
    with pytest.warns(RuntimeWarning, match=f"took over the stale lock of job pid {dead_pid} on {socket.gethostname()}"):
        _run(tree, out)
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]


def test_a_lock_from_another_host_is_never_taken_over(tmp_path, tree):
    out = tmp_path / "s.zarr"
    lock = tmp_path / "s.zarr.lock"
    lock.write_text(json.dumps({"pid": 12345, "host": "node-17", "started": "x", "command": "meshkit ..."}))
    with pytest.raises(w300lp.StoreLockedError, match="pid 12345 on host node-17"):
        _run(tree, out)
    assert not out.exists() and lock.exists()


def test_out_in_a_folder_that_does_not_exist_yet(tmp_path, tree, clean):
    out = tmp_path / "a" / "b" / "s.zarr"
    _run(tree, out)
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]


# ---------------------------------------------------------------------------------------------
# atomic creation


@pytest.mark.parametrize("instant", ["after the temporary store is made", "just after the rename"])
def test_a_kill_during_creation_leaves_nothing_or_a_resumable_store(tmp_path, tree, clean, instant):
    out = tmp_path / "s.zarr"
    if instant == "after the temporary store is made":
        hook = ("create = store._create_store\n"
                "def create_then_die(*a, **k):\n    create(*a, **k)\n    os._exit(70)\n"
                "store._create_store = create_then_die\n")
    else:  # the rename is followed by an fsync of the parent folder
        hook = "store._fsync_dir = lambda path: os._exit(70)\n"
    r = _child(_preprocess_code(tree, out, hook))
    assert r.returncode == 70, r.stderr[-2000:]
    if instant == "after the temporary store is made":
        assert not out.exists()  # nothing at out: the half-made store is under its temporary name
        assert _siblings(out) == ["s.zarr.creating", "s.zarr.lock"]
    else:
        assert _siblings(out) == ["s.zarr", "s.zarr.lock"]
        assert (zarr.open_group(str(out), mode="r")["status"][:] == 0).all()
    with pytest.warns(RuntimeWarning, match="stale lock"):
        s = _run(tree, out)
    assert s.blocks_resumed == 0
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]


def test_a_kill_while_overwriting_leaves_nothing_and_the_rerun_creates_the_store(tmp_path, tree, clean):
    """overwrite=True over a store made with other settings; the job dies between moving the old
    store aside and moving the new one in: nothing at out, and the same command makes the store."""
    out = tmp_path / "s.zarr"
    _run(tree, out, size=SIZE + 8)
    hook = ("rename = os.rename\n"
            "def rename_then_die(a, b):\n    rename(a, b)\n    if str(b).endswith('.replaced'):\n        os._exit(70)\n"
            "os.rename = rename_then_die\n")
    code = _preprocess_code(tree, out, hook).replace("progress=False)", "progress=False, overwrite=True)")
    r = _child(code)
    assert r.returncode == 70, r.stderr[-2000:]
    assert _siblings(out) == ["s.zarr.creating", "s.zarr.lock", "s.zarr.replaced"]
    with pytest.warns(RuntimeWarning, match="stale lock"):
        _run(tree, out)
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]


# ---------------------------------------------------------------------------------------------
# Dask


@pytest.mark.slow
def test_paths_reach_dask_workers_absolute(tmp_path, tree, clean, model, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from bfm.formats import save_npz
    from bfm.w300lp import runners

    save_npz(tmp_path / "model.npz", model)
    shutil.copytree(tree, tmp_path / "300W_LP")
    monkeypatch.chdir(tmp_path)
    seen = {}
    run_dask = runners.run_dask

    def spy(scheduler, spec, out, tasks, opts, on_done, **kw):
        tasks = list(tasks)
        seen.update(model=spec.model, out=out, files=[p for _, _, smp in tasks for s in smp for p in (s.image, s.mat)])
        run_dask(scheduler, spec, out, iter(tasks), opts, on_done, **kw)

    monkeypatch.setattr(runners, "run_dask", spy)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        w300lp.preprocess("300W_LP", "rel.zarr", model="model.npz", size=SIZE, block_size=BLOCK,
                          scheduler=c.scheduler_address, progress=False)
    assert Path(seen["model"]).is_absolute() and Path(seen["model"]) == tmp_path / "model.npz"
    assert Path(seen["out"]) == tmp_path / "rel.zarr"
    assert seen["files"] and all(Path(p).is_absolute() for p in seen["files"])
    g, ref = zarr.open_group(str(tmp_path / "rel.zarr"), mode="r"), zarr.open_group(str(clean), mode="r")
    np.testing.assert_array_equal(g["images"][:], ref["images"][:])


@pytest.mark.slow
def test_a_lost_cluster_ends_with_one_line_and_rerunning_resumes(tmp_path, tree, clean, model):
    """The cluster (scheduler and workers) goes away after the first finished block: the CLI exits 2
    with one line saying so and that rerunning resumes; rerunning the same settings resumes."""
    pytest.importorskip("distributed")
    from bfm.formats import save_npz

    npz = save_npz(tmp_path / "model.npz", model)
    out = tmp_path / "s.zarr"
    code = f"""
import sys
from distributed import LocalCluster
from bfm.w300lp import runners
from meshkit.cli import main

cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
run_dask = runners.run_dask

def run_dask_then_lose(scheduler, spec, out, tasks, opts, on_done, **kw):
    def on_done_then_lose(result):
        on_done(result)
        if cluster.status.name != "closed":
            cluster.close(timeout=20)

    run_dask(scheduler, spec, out, tasks, opts, on_done_then_lose, **kw)

runners.run_dask = run_dask_then_lose
sys.exit(main(["preprocess-300wlp", {str(tree)!r}, "--out", {str(out)!r}, "--model", {str(npz)!r}, "--size", "{SIZE}",
               "--block-size", "{BLOCK}", "--scheduler", cluster.scheduler_address, "--no-progress"]))
"""
    t0 = time.monotonic()
    r = _child(code, timeout=150)
    assert r.returncode == 2, r.stderr[-3000:]
    assert time.monotonic() - t0 < 120
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("meshkit preprocess-300wlp: error:")]
    assert len(lines) == 1 and "Dask cluster lost" in lines[0] and "rerunning the same command resumes" in lines[0]
    done = zarr.open_group(str(out), mode="r")["status"][:]
    assert 0 < (done != 0).sum() < len(done)
    _resume_matches(tree, out, clean)
    assert _siblings(out) == ["s.zarr"]


@pytest.mark.slow
def test_workers_dying_in_a_task_end_with_one_line(tmp_path, tree, model):
    """The worker process dies while running a block (allowed-failures=0): the same one-line error,
    exit 2, and the blocks done before are kept, whole."""
    pytest.importorskip("distributed")
    from bfm.formats import save_npz

    npz = save_npz(tmp_path / "model.npz", model)
    out = tmp_path / "s.zarr"
    code = f"""
import os, sys
import dask
from distributed import LocalCluster
from bfm.w300lp import runners
from meshkit.cli import main

run_block = runners.run_block

def run_block_or_die(spec, out, b, start, smp, opts):
    if b >= 2:
        os._exit(1)  # the worker process dies in the task
    return run_block(spec, out, b, start, smp, opts)

if __name__ == "__main__":
    runners.run_block = run_block_or_die
    with dask.config.set({{"distributed.scheduler.allowed-failures": 0}}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1")
        rc = main(["preprocess-300wlp", {str(tree)!r}, "--out", {str(out)!r}, "--model", {str(npz)!r}, "--size",
                   "{SIZE}", "--block-size", "{BLOCK}", "--scheduler", cluster.scheduler_address, "--no-progress"])
    os._exit(rc)
"""
    script = tmp_path / "job.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=150)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("meshkit preprocess-300wlp: error:")]
    # KilledWorker for the block, or the cancellation of the blocks that needed the spec scattered to
    # the dead worker, whichever the scheduler reports first
    assert len(lines) == 1 and "rerunning the same command resumes" in lines[0], r.stderr[-3000:]
    assert "KilledWorker" in lines[0] or "FutureCancelledError" in lines[0]
    status = zarr.open_group(str(out), mode="r", use_consolidated=False)["status"][:]
    blocks = (status.reshape(-1, BLOCK) != 0).sum(axis=1)
    assert set(blocks[:2]) <= {0, BLOCK} and (blocks[2:] == 0).all()  # whole blocks or nothing; none past the kill


@pytest.mark.slow
def test_a_scheduler_without_workers_ends_with_one_line_and_rerunning_resumes(tmp_path, tree, clean):
    """A scheduler that never gets a worker: ``ClusterLost`` once it has had none for
    ``no_workers_timeout`` seconds, naming the scheduler, the wait and the option; the store is left
    resumable: once a worker joins, the same command finishes it, equal to an uninterrupted run."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "s.zarr"
    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        t0 = time.monotonic()
        with pytest.raises(w300lp.ClusterLost) as e:
            _run(tree, out, scheduler=c.scheduler_address, no_workers_timeout=1.5)
        elapsed = time.monotonic() - t0
        msg = str(e.value)
        waited = float(msg.split("no workers for ")[1].split(" s")[0])
        assert 1.5 <= waited <= elapsed < 20
        assert "\n" not in msg and c.scheduler_address in msg and "0 block(s) of this run finished" in msg
        assert "no_workers_timeout" in msg and "rerunning the same command resumes" in msg and str(out) in msg
        status = zarr.open_group(str(out), mode="r", use_consolidated=False)["status"][:]
        assert len(status) and (status == 0).all()
        c.scale(1)
        c.wait_for_workers(1, timeout=30)
        s = _run(tree, out, scheduler=c.scheduler_address, no_workers_timeout=1.5)
    assert s.blocks_resumed == 0 and s.blocks_total == len(status) // BLOCK
    _assert_same_arrays(out, clean)
    assert _siblings(out) == ["s.zarr"]


@pytest.mark.slow
def test_the_last_worker_leaving_mid_run_ends_with_one_line_and_rerunning_resumes(tmp_path, tree, clean, monkeypatch):
    """The only worker leaves after the first finished block while the scheduler keeps running: the run
    ends with ``ClusterLost`` in seconds (it never waits for ever) and rerunning resumes."""
    distributed = pytest.importorskip("distributed")
    from bfm.w300lp import runners

    out = tmp_path / "s.zarr"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        run_dask = runners.run_dask

        def run_dask_then_retire(scheduler, spec, out, tasks, opts, on_done, **kw):
            def on_done_then_retire(result):
                on_done(result)
                c.scale(0)

            run_dask(scheduler, spec, out, tasks, opts, on_done_then_retire, **kw)

        monkeypatch.setattr(runners, "run_dask", run_dask_then_retire)
        t0 = time.monotonic()
        with pytest.raises(w300lp.ClusterLost) as e:
            _run(tree, out, scheduler=c.scheduler_address, no_workers_timeout=1.5)
        assert time.monotonic() - t0 < 20
    msg = str(e.value)
    assert "\n" not in msg and "rerunning the same command resumes" in msg and str(out) in msg
    status = zarr.open_group(str(out), mode="r", use_consolidated=False)["status"][:]
    assert 0 < (status != 0).sum() < len(status)
    _resume_matches(tree, out, clean)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (float("inf"), ValueError),
                                        ("x", TypeError), (True, TypeError)])
def test_a_bad_no_workers_timeout_is_refused_naming_it(tmp_path, tree, bad, error):
    with pytest.raises(error, match="no_workers_timeout"):
        _run(tree, tmp_path / "s.zarr", no_workers_timeout=bad)
    assert not (tmp_path / "s.zarr").exists()


def test_the_no_workers_timeout_flag(capsys):
    from meshkit.cli import build_parser

    def parsed(*flag):
        return build_parser().parse_args(["preprocess-300wlp", "root", "--out", "s.zarr", *flag]).no_workers_timeout

    assert parsed() == 300.0 and parsed("--no-workers-timeout", "2.5") == 2.5
    assert parsed("--no-workers-timeout", "none") is None
    with pytest.raises(SystemExit):
        parsed("--no-workers-timeout", "x")
    assert "--no-workers-timeout: expected seconds" in capsys.readouterr().err


def test_block_rows_are_fsynced_before_the_status_chunk_marks_them_done(tmp_path, monkeypatch):
    """The store's progress record is the per-block ``status`` chunk: after a power loss it must not
    claim rows that never reached the disk, so every chunk file of a block is fsynced before its
    status chunk is written (and the status chunk after)."""
    import os

    from bfm import w300lp
    from bfm.synthetic import small_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp

    model = small_model()
    root = tmp_path / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=2, image_size=120, face_px=60, seed=3, subsets=("AFW",))
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    out = tmp_path / "s.zarr"
    w300lp.preprocess(root, out, model=model, size=64, workers=1, block_size=2, progress=False)
    n_blocks = 2  # 2 samples + 2 flips, 2 per block
    for block in range(n_blocks):
        status = str(out / "status" / "c" / str(block))
        assert status in synced, f"status chunk of block {block} never fsynced"
        rows = [i for i, p in enumerate(synced) if p.startswith(str(out / "vertices" / "c" / str(block)) + os.sep)]
        assert rows, f"no vertices chunk file of block {block} was fsynced"
        assert max(rows) < synced.index(status), f"block {block}: status fsynced before its rows"


def test_jobs_racing_for_a_stale_lock_never_both_hold_it(tmp_path):
    """Six processes start at once on a store whose lock file a killed job left behind: exactly one
    holds the lock, the others are refused naming it (the takeover is one flock, not read-compare-delete)."""
    import subprocess
    import sys

    out = tmp_path / "s.zarr"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "s.zarr.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                      "started": "x", "command": "killed job"}))
    code = ("import time, warnings; from pathlib import Path; from bfm.w300lp.store import store_lock, StoreLockedError\n"
            "warnings.simplefilter('ignore')\n"
            "try:\n"
            f"    with store_lock(Path({str(out)!r})):\n"
            "        print('held', flush=True); time.sleep(4)\n"
            "except StoreLockedError as e:\n"
            "    print('refused', 'in use by another preprocess job' in str(e), flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    results = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert results.count("held") == 1, results
    assert results.count("refused True") == 5, results
    assert not (tmp_path / "s.zarr.lock").exists()  # released, and nothing left beside the store
