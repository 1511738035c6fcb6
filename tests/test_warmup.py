"""`meshkit warmup`: every numba kernel of meshkit and bfm compiled into numba's on-disk cache once,
so that a fresh process compiles nothing (issue #17, cold start)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshkit import cli

ROOT = Path(__file__).resolve().parents[1]


def _meshkit(args, cache=None, *, timeout=900):
    """``python -m meshkit ARGS`` in a fresh interpreter, this checkout first on the path, numba's
    cache in ``cache`` when given."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "meshkit", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def _is_njit(decorator) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "njit") or (
        isinstance(target, ast.Attribute) and target.attr == "njit")


def _inlined(decorator) -> bool:
    """``inline="always"``: numba inlines the function into its callers' IR; it has no cache file of its own."""
    return isinstance(decorator, ast.Call) and any(
        k.arg == "inline" and isinstance(k.value, ast.Constant) and k.value.value == "always" for k in decorator.keywords)


def kernel_functions() -> list:
    """(folder name, module stem, function name) of every cached numba function, read from the
    sources' syntax trees: the files of meshkit/_kernels and bfm/w300lp/_kernels.py (a new kernel
    file or function is found here without editing this test)."""
    files = sorted((ROOT / "meshkit" / "_kernels").glob("*.py")) + [ROOT / "bfm" / "w300lp" / "_kernels.py"]
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                decorators = [d for d in node.decorator_list if _is_njit(d)]
                if decorators and not any(_inlined(d) for d in decorators):
                    out.append((path.parent.name, path.stem, node.name))
    return out


def cache_files(cache: Path) -> dict:
    """{path relative to the cache: modification time in ns} of numba's index (.nbi) and data (.nbc) files."""
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")}


def test_kernel_functions_finds_the_known_kernel_files():
    """The source scan itself: it sees the kernel modules of both packages (not an empty list that
    would make the slow test pass vacuously)."""
    modules = {(folder, stem) for folder, stem, _ in kernel_functions()}
    assert {("_kernels", "decimate"), ("_kernels", "transfer"), ("_kernels", "render"), ("_kernels", "spiral"),
            ("_kernels", "topology"), ("w300lp", "_kernels")} <= modules


def test_warmup_help():
    r = _meshkit(["warmup", "--help"], timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "numba" in text and "NUMBA_CACHE_DIR" in text and "__pycache__" in text
    assert "upgrading numba or meshkit" in text
    r = _meshkit(["--help"], timeout=120)
    assert r.returncode == 0 and "warmup" in r.stdout


def test_warmup_steps_come_from_every_command_module():
    modules = cli.command_modules()
    assert [m.__name__ for m in modules] == ["meshkit.commands", "bfm.cli", "sampling.cli"]
    steps = cli.warmup_steps()
    for m in modules:  # each module contributes its own steps, in module order
        assert len(m.WARMUP_STEPS) >= 1, m.__name__
    assert [id(s) for s in steps] == [id(s) for m in modules for s in m.WARMUP_STEPS]
    for name, fn in steps:
        assert isinstance(name, str) and name and callable(fn)


def test_a_failing_step_is_named_and_the_command_exits_nonzero(monkeypatch, capsys):
    ran = []

    def broken():
        raise ZeroDivisionError("a kernel failed to compile")

    steps = [("first", lambda: ran.append("first")), ("broken step", broken), ("after", lambda: ran.append("after"))]
    monkeypatch.setattr(cli, "warmup_steps", lambda: steps)
    assert cli.main(["warmup"]) == 1
    out, err = capsys.readouterr()
    assert ran == ["first"]  # the steps after the failure do not run
    assert "[warmup] first:" in out and "after" not in out
    assert "'broken step'" in err and "ZeroDivisionError: a kernel failed to compile" in err


@pytest.mark.slow
def test_warmup_caches_every_kernel_and_a_fresh_process_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    r = _meshkit(["warmup"], cache)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    # one line per step with its seconds, then the total
    lines = [x for x in r.stdout.splitlines() if x.startswith("[warmup] ")]
    names = [name for name, _ in cli.warmup_steps()]
    for name in names:
        assert any(x.startswith(f"[warmup] {name}: ") and x.endswith(" s") for x in lines), name
    assert lines[-1].startswith(f"[warmup] {len(names)} steps") and lines[-1].endswith(" s")

    files = cache_files(cache)
    index_names = [Path(p) for p in files if p.endswith(".nbi")]
    missing = [f"{folder}/{stem}.py: {func}" for folder, stem, func in kernel_functions()
               if not any(p.parent.name.startswith(folder + "_") and p.name.startswith(f"{stem}.{func}-")
                          for p in index_names)]
    assert not missing, "kernels without a warm-up step (no numba index file after `meshkit warmup`):\n" + "\n".join(missing)

    # a second fresh process on that cache: decimation of another small template loads every
    # kernel it needs from the cache and writes nothing (no new file, no file rewritten)
    code = ("from meshkit import decimate; from meshkit.synthetic import face_template; "
            "v, f = face_template(800); d = decimate(v, f, factor=3); print(len(d.vertices))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert cache_files(cache) == files
