#!/usr/bin/env bash
# Set up a fresh machine for meshkit: system library for CHOLMOD, a virtual environment in .venv,
# PyTorch CPU, then meshkit with every extra, then the numba kernels compiled once. Safe to run again
# (it only adds what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

# 1. SuiteSparse headers, for scikit-sparse's CHOLMOD (Debian has SuiteSparse 5.12, hence scikit-sparse<0.5).
have_suitesparse() { [ -e /usr/include/suitesparse/cholmod.h ]; }
if ! have_suitesparse; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing libsuitesparse-dev (apt-get)"
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsuitesparse-dev >/dev/null; } \
      || echo "[setup] apt-get could not install libsuitesparse-dev: continuing without CHOLMOD"
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    echo "[setup] installing libsuitesparse-dev (sudo apt-get)"
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsuitesparse-dev >/dev/null || true
  fi
fi

# 2. The virtual environment.
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"

# 3. PyTorch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$PIP install -q "torch==2.13.0"

# 4. meshkit with every extra (cholmod needs step 1; without SuiteSparse it is skipped and
#    meshkit falls back to scipy's sparse solvers).
if have_suitesparse; then
  $PIP install -q -e ".[all]"
else
  echo "[setup] SuiteSparse headers not found: installing without scikit-sparse (scipy solvers will be used)"
  $PIP install -q -e ".[torch,viz,dist,dev]"
fi

# 5. Compile the numba kernels into their on-disk cache once (~30 s of CPU), so that no first call
#    pays the JIT later (`meshkit warmup`; run it again after changing numba or a kernel).
"$VENV/bin/python" -m meshkit warmup

touch "$VENV/.installed"
echo "[setup] ready: $VENV"
