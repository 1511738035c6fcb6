"""Run every benchmark script in this folder, one process each (so numba caches and peak-memory
figures do not leak between them), and print their tables in order.

Usage: .venv/bin/python benchmarks/run_all.py [name ...]   (names like `decimate`, `render`)
"""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
wanted = set(sys.argv[1:])
scripts = sorted(p for p in here.glob("bench_*.py") if not wanted or p.stem.removeprefix("bench_") in wanted)
failed = []
for script in scripts:
    print(f"\n===== {script.name} =====", flush=True)
    if subprocess.run([sys.executable, str(script)]).returncode != 0:
        failed.append(script.name)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
