"""Shared timing helpers for the benchmarks: first call (JIT compile included) reported apart from
steady-state time, peers timed side by side in the same run, results printed as ratio tables.

Usage in a benchmark script::

    from _runner import Bench
    b = Bench("decimate 53K -> 1/4")
    b.time("meshkit", lambda: decimate(v, f, factor=4))
    b.time("fast-simplification", lambda: fast_simplification.simplify(v, f, 0.75))
    b.report(reference="meshkit")
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    name: str
    first: float  # seconds, the first call (includes JIT compilation / caches)
    best: float  # seconds, best steady-state call
    median: float  # seconds, median steady-state call
    runs: int
    note: str = ""


@dataclass
class Bench:
    title: str
    timings: list[Timing] = field(default_factory=list)

    def time(self, name: str, fn, *, repeat: int = 5, min_time: float = 0.0, note: str = "") -> Timing | None:
        """Call ``fn`` once (reported as 'first'), then ``repeat`` more times (steady state).

        A peer that is not installed should be skipped by the caller (see ``optional``).
        """
        gc.collect()
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        t = Timing(name, first, min(times), statistics.median(times), len(times), note)
        self.timings.append(t)
        return t

    def skip(self, name: str, why: str) -> None:
        self.timings.append(Timing(name, float("nan"), float("nan"), float("nan"), 0, f"skipped: {why}"))

    def report(self, reference: str | None = None) -> str:
        """Print and return a table; ratio = this row's median / the reference row's median."""
        ref = next((t for t in self.timings if t.name == reference), None)
        lines = [f"## {self.title}", "", "| impl | first call (s) | best (s) | median (s) | x ref | note |",
                 "|---|---:|---:|---:|---:|---|"]
        for t in self.timings:
            if t.runs == 0:
                lines.append(f"| {t.name} | - | - | - | - | {t.note} |")
                continue
            ratio = f"{t.median / ref.median:.2f}" if ref is not None and ref.median > 0 else "-"
            lines.append(f"| {t.name} | {t.first:.4f} | {t.best:.4f} | {t.median:.4f} | {ratio} | {t.note} |")
        out = "\n".join(lines) + "\n"
        print(out, flush=True)
        return out


def optional(module: str):
    """Import a peer if installed, else None (the benchmark then records a skipped row)."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any import failure means the peer is unavailable here
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
