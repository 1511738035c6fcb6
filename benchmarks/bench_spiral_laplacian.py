"""Spirals and Laplacians on the 53,215-vertex synthetic face template, side by side with peers.

Run: .venv/bin/python benchmarks/bench_spiral_laplacian.py [--small]

Targets (after warm-up): spirals (length 9) < 0.2 s; cotangent Laplacian + mass < 0.1 s;
normalized Laplacian < 0.05 s; 20 smallest eigenpairs < 5 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _runner import Bench, optional  # noqa: E402

from meshkit import laplacian as lp  # noqa: E402
from meshkit import spiral_indices  # noqa: E402
from meshkit.synthetic import face_template  # noqa: E402


def _python_rings(faces, n):
    """Ordered one-rings from scratch: corner (a, b, c) at a gives the CCW step b -> c. Start at
    the step source nobody steps to (boundary), else the smallest neighbour."""
    steps = [dict() for _ in range(n)]
    for a, b, c in faces.tolist():
        steps[a][b] = c
        steps[b][c] = a
        steps[c][a] = b
    rings = []
    for v in range(n):
        s = steps[v]
        if not s:
            rings.append([])
            continue
        starts = set(s) - set(s.values())
        cur = min(starts) if starts else min(s)
        ring = [cur]
        while cur in s and s[cur] != ring[0]:
            cur = s[cur]
            ring.append(cur)
        rings.append(ring)
    return rings


def _python_spirals(faces, n, length, dilation=1, padding="repeat"):
    """SpiralNet++-style spirals with pure-Python loops: the baseline timed against spiral_indices."""
    rings = _python_rings(faces, n)
    need = length * dilation
    out = np.empty((n, length), dtype=np.int64)
    for c in range(n):
        spiral = [c]
        prev_ring = list(rings[c])
        spiral += prev_ring
        while prev_ring and len(spiral) < need:
            new = []
            for k, w in enumerate(prev_ring):
                r = rings[w]
                before = prev_ring[k - 1]  # k = 0: the last vertex of the ring
                if before in r:
                    j = r.index(before)
                else:
                    j = next(i for i, u in enumerate(r) if u in spiral or u in new)
                for u in r[j + 1:] + r[:j + 1]:
                    if u not in spiral and u not in new:
                        new.append(u)
            spiral += new
            prev_ring = new
        row = spiral[:need][::dilation]
        pad = row[-1] if padding == "repeat" else n
        out[c] = row + [pad] * (length - len(row))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="2,000-vertex template (quick check)")
    args = ap.parse_args()
    v, f = face_template(2000 if args.small else 53_215)
    n = len(v)
    print(f"mesh: {n} vertices, {len(f)} faces; factorization backend: {lp.factor_backend()}\n")

    # -- spirals --------------------------------------------------------------------------
    b = Bench(f"spiral indices, length 9, {n} vertices")
    b.time("meshkit spiral_indices", lambda: spiral_indices(f, 9), repeat=10)
    b.time("pure-Python loops (SpiralNet++-style)", lambda: _python_spirals(f, n, 9), repeat=1)
    if optional("openmesh") is None:
        b.skip("SpiralNet++ extract_spirals (openmesh)", "openmesh not installed")
    b.report(reference="meshkit spiral_indices")

    # -- cotangent + mass -----------------------------------------------------------------
    b = Bench(f"cotangent Laplacian + barycentric mass, {n} vertices")
    b.time("meshkit cotangent + mass", lambda: (lp.cotangent(v, f), lp.mass(v, f)), repeat=10)
    b.time("meshkit cotangent + mass (voronoi)", lambda: (lp.cotangent(v, f), lp.mass(v, f, kind="voronoi")), repeat=10)
    igl = optional("igl")
    if igl is not None:
        bary = igl.MASSMATRIX_TYPE_BARYCENTRIC
        b.time("libigl cotmatrix + massmatrix", lambda: (igl.cotmatrix(v, f), igl.massmatrix(v, f, bary)), repeat=5)
    else:
        b.skip("libigl", "not installed")
    pp3d = optional("potpourri3d")
    if pp3d is not None:
        b.time("potpourri3d cotan_laplacian + vertex_areas", lambda: (pp3d.cotan_laplacian(v, f), pp3d.vertex_areas(v, f)),
               repeat=5)
    else:
        b.skip("potpourri3d", "not installed")
    rl = optional("robust_laplacian")
    if rl is not None:
        b.time("robust-laplacian mesh_laplacian", lambda: rl.mesh_laplacian(v, f), repeat=3,
               note="intrinsic Delaunay + mollification: a different operator")
    else:
        b.skip("robust-laplacian", "not installed")
    b.report(reference="meshkit cotangent + mass")

    # -- graph Laplacians -----------------------------------------------------------------
    b = Bench(f"graph Laplacians, {n} vertices")
    b.time("meshkit normalized", lambda: lp.normalized(f, n), repeat=10)
    b.time("meshkit combinatorial", lambda: lp.combinatorial(f, n), repeat=10)
    nx = optional("networkx")
    if nx is not None:
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).tolist())
        b.time("networkx normalized_laplacian_matrix", lambda: nx.normalized_laplacian_matrix(g, nodelist=range(n)), repeat=2,
               note="graph built outside the timing")
        b.time("networkx laplacian_matrix", lambda: nx.laplacian_matrix(g, nodelist=range(n)), repeat=2)
    else:
        b.skip("networkx", "not installed")
    b.report(reference="meshkit normalized")

    # -- Chebyshev ------------------------------------------------------------------------
    N = lp.normalized(f, n)
    b = Bench(f"Chebyshev: lambda_max + rescale, basis K=6 on (V, 3), {n} vertices")
    b.time("meshkit chebyshev_rescale (lambda_max by ARPACK)", lambda: lp.chebyshev_rescale(N), repeat=3)
    H = lp.chebyshev_rescale(N, 2.0)
    b.time("meshkit chebyshev_basis K=6", lambda: lp.chebyshev_basis(H, v, 6), repeat=10)
    b.report(reference="meshkit chebyshev_rescale (lambda_max by ARPACK)")

    # -- eigenbasis -----------------------------------------------------------------------
    L, M = lp.cotangent(v, f), lp.mass(v, f)
    b = Bench(f"20 smallest eigenpairs of (cotangent, mass), {n} vertices")
    b.time(f"meshkit eigenbasis ({lp.factor_backend()} shift-invert)", lambda: lp.eigenbasis(L, 20, M), repeat=2)
    sigma = -1e-8 * float(np.mean(L.diagonal())) / float(np.mean(M.diagonal()))
    b.time("scipy eigsh(sigma=...) (SuperLU shift-invert)", lambda: spla.eigsh(L, k=20, M=M, sigma=sigma, which="LM"), repeat=1)
    b.report(reference=f"meshkit eigenbasis ({lp.factor_backend()} shift-invert)")

    # -- smoothing ------------------------------------------------------------------------
    t = 1e-4 * float(M.diagonal().sum())
    b = Bench(f"implicit smoothing (M + tL) x = M x0 of the vertices, {n} vertices")
    b.time("meshkit smooth (build + factor + solve)", lambda: lp.smooth(v, f, t), repeat=3)
    s = lp.Smoother(v, f, t)
    b.time("meshkit Smoother solve (factor reused)", lambda: s(v), repeat=10)
    A = (M + t * L).tocsc()
    b.time("scipy spsolve (SuperLU, per solve)", lambda: spla.spsolve(A, M @ v), repeat=2)
    b.report(reference="meshkit smooth (build + factor + solve)")


if __name__ == "__main__":
    main()
