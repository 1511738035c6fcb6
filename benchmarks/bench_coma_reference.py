"""Error reference for "keep original vertices" decimation: CoMA's own decimator on our templates (issue #17).

CoMA (Ranjan et al. 2018, github.com/anuragranj/coma ``lib/mesh_sampling.py``; SpiralNet++ carries a copy in
``utils/mesh_sampling.py``) decimates by a QEM edge collapse that keeps one end point of each edge, the
semantics ``meshkit.decimate`` promises. pyfqmr and fast-simplification move vertices to the quadric-optimal
position, which no end-point placement can do; so the fair error reference for meshkit is CoMA's own
decimator on the same input and target. One table per template (``face_template(n, topology=t)``, um):
CoMA's ``qslim_decimator_transformer``, ``meshkit.decimate(v, f, factor=4)``, meshkit followed by a
quadric-optimal repositioning of its coarse vertices (what placement alone would buy), fast-simplification
and pyfqmr at meshkit's face count. Error: distance of every fine vertex to the coarse surface
(``meshkit.transfer.closest_points``, as in bench_decimate.py), mean and max; "flipped": coarse faces whose
normal has z <= 0 (every template face faces +z); the mean error again over the fine vertices at least
10 edge hops from the rim (so the rim's treatment apart); the coarse boundary vertices and area. Then how
many kept vertices meshkit and CoMA share.

CoMA's code is not in this repository and is never copied into it: ``--coma PATH`` names their
``mesh_sampling.py``, a checkout holding ``lib/mesh_sampling.py`` or ``utils/mesh_sampling.py``, or a bare
git directory (read with ``git show HEAD:...``). It imports psbody.mesh / opendr, which do not install
here; a small shim of our own (``Mesh``, ``get_vert_connectivity``, ``get_vertices_per_edge`` on
scipy.sparse, checked against trimesh's edges) stands in for them. Their decimator is pure Python with
linear scans of the edge queue and the face array per collapse: 9.3 s CPU at 5,040 vertices and 144 s at
13,000 here (~V^2.9), so 40 min to 2.5 h at 53,215; ``--n`` picks a smaller template for all peers alike.

Run: ``.venv/bin/python benchmarks/bench_coma_reference.py --coma /path/to/coma [--n 53215]
[--topology bfm rows] [--repeat 3]`` (without ``--coma``, or if the path holds no mesh_sampling.py: "skipped").
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from bench_decimate import alternate, peers

from meshkit.decimate import decimate
from meshkit.synthetic import face_template
from meshkit.transfer import closest_points

RINGS = 10  # "away from the rim": fine vertices at least this many edge hops from the boundary
CANDIDATES = ("lib/mesh_sampling.py", "utils/mesh_sampling.py", "mesh_sampling.py")


# ------------------------------------------------------------------------------------------------
# getting their module: a shim for psbody.mesh / opendr.topology, then their file


class _Mesh:
    """Stand-in for psbody.mesh.Mesh: their decimator reads ``.v`` and ``.f`` only."""

    def __init__(self, v=None, f=None):
        self.v = np.asarray(v, dtype=np.float64)
        self.f = np.asarray(f, dtype=np.int64)


def _vert_connectivity(mesh_v, mesh_f) -> sp.csc_matrix:
    """(V, V) sparse vertex adjacency: nonzero at (i, j) when an edge joins i and j (symmetric)."""
    f = np.asarray(mesh_f, dtype=np.int64)
    i = f.ravel()
    j = np.roll(f, -1, axis=1).ravel()
    n = len(mesh_v)
    a = sp.coo_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsc()
    a.data[:] = 1.0  # duplicates summed by tocsc: keep the pattern
    return a


def _vertices_per_edge(mesh_v, mesh_f) -> np.ndarray:
    """(E, 2) int array, each undirected edge once as (i, j) with i < j."""
    a = sp.triu(_vert_connectivity(mesh_v, mesh_f), k=1).tocoo()
    return np.column_stack([a.row, a.col]).astype(np.int64)


def install_shim() -> None:
    """Register psbody.mesh(.topology.connectivity) and opendr.topology in sys.modules (ours, tiny)."""
    conn = types.ModuleType("psbody.mesh.topology.connectivity")
    conn.get_vert_connectivity = _vert_connectivity
    conn.get_vertices_per_edge = _vertices_per_edge
    mods = {
        "psbody": types.ModuleType("psbody"),
        "psbody.mesh": types.ModuleType("psbody.mesh"),
        "psbody.mesh.topology": types.ModuleType("psbody.mesh.topology"),
        "psbody.mesh.topology.connectivity": conn,
        "opendr": types.ModuleType("opendr"),
        "opendr.topology": conn,
    }
    mods["psbody.mesh"].Mesh = _Mesh
    for name, mod in mods.items():
        sys.modules.setdefault(name, mod)


def check_shim(v: np.ndarray, f: np.ndarray) -> None:
    """The shim's edges are trimesh's unique edges, and its adjacency is their symmetric pattern."""
    import trimesh

    ref = np.sort(trimesh.Trimesh(v, f, process=False).edges_unique, axis=1)
    ours = _vertices_per_edge(v, f)
    assert (ours[:, 0] < ours[:, 1]).all()
    key = lambda e: np.unique(e[:, 0] * len(v) + e[:, 1])  # noqa: E731
    assert len(ours) == len(ref) and np.array_equal(key(ours), key(ref)), "shim edges differ from trimesh's"
    a = _vert_connectivity(v, f)
    assert a.nnz == 2 * len(ref) and (a != a.T).nnz == 0


def locate(path: str | None, workdir: str) -> tuple[Path | None, str]:
    """Their mesh_sampling.py (extracted into workdir from a bare git dir) and a description of its source."""
    if path is None:
        return None, "no --coma PATH given"
    p = Path(path)
    if p.is_file():
        return p, f"file {p}"
    if not p.is_dir():
        return None, f"{p} does not exist"
    git = ["git", f"--git-dir={p}"] if (p / "HEAD").is_file() and (p / "objects").is_dir() else ["git", "-C", str(p)]
    rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = rev.stdout.strip() if rev.returncode == 0 else "unknown commit"
    for rel in CANDIDATES:
        if (p / rel).is_file():
            return p / rel, f"{p / rel} (commit {commit})"
    for rel in CANDIDATES:  # a bare git directory: no work tree
        out = subprocess.run([*git, "show", f"HEAD:{rel}"], capture_output=True)
        if out.returncode == 0:
            dst = Path(workdir) / "mesh_sampling.py"
            dst.write_bytes(out.stdout)
            return dst, f"{p}:{rel} at commit {commit}"
    return None, f"no {' / '.join(CANDIDATES)} under {p}"


def load_theirs(file: Path) -> types.ModuleType:
    install_shim()
    spec = importlib.util.spec_from_file_location("coma_mesh_sampling", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------
# measures


def error_um(v: np.ndarray, cv: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """Distance of every fine vertex to the coarse surface."""
    return closest_points(np.asarray(cv, float), np.asarray(cf, np.int64), v)[3]


def face_normals(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (zero for degenerate faces) and areas."""
    c = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    ln = np.linalg.norm(c, axis=1)
    return c / np.where(ln > 0, ln, 1.0)[:, None], 0.5 * ln


def boundary_vertices(f: np.ndarray) -> np.ndarray:
    """Vertices on an edge with one face."""
    f = np.asarray(f, np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [0, 2]]]), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    return np.unique(u[c == 1])


def rings_from_rim(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Edge hops from each vertex to the nearest boundary vertex."""
    from scipy.sparse.csgraph import dijkstra

    a = _vert_connectivity(v, f)
    return dijkstra(a, unweighted=True, indices=boundary_vertices(f), min_only=True)


def flipped(v: np.ndarray, f: np.ndarray) -> int:
    """Faces whose normal has z <= 0 (every template face faces +z), degenerate ones included."""
    return int((face_normals(np.asarray(v, float), np.asarray(f, np.int64))[0][:, 2] <= 0).sum())


def reposition(v: np.ndarray, f: np.ndarray, d, rel: float = 1e-3) -> np.ndarray:
    """meshkit's coarse vertices moved to the minimiser of their cluster's summed area-weighted plane quadrics.

    Cluster of a coarse vertex: itself and every fine vertex collapsed into it (``d.collapses`` rows
    (removed, kept), followed to the end). The step from the kept vertex x0 solves A y = -(A x0 + b)
    along A's eigen-directions with eigenvalue > ``rel`` * the largest only (else no move along them).

    Returns (n_coarse, 3) float64.
    """
    n = len(v)
    normal, area = face_normals(v, f)
    dist = -(normal * v[f[:, 0]]).sum(1)
    a_face = area[:, None, None] * normal[:, :, None] * normal[:, None, :]
    b_face = (area * dist)[:, None] * normal
    root = np.arange(n)
    for removed, kept in d.collapses:  # in order: a vertex removed later may already own a cluster
        root[removed] = kept
    for _ in range(64):  # follow chains r -> k -> ... to the kept vertex
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    assert np.array_equal(np.unique(root), d.kept)
    a = np.zeros((n, 3, 3))
    b = np.zeros((n, 3))
    for k in range(3):
        np.add.at(a, root[f[:, k]], a_face)
        np.add.at(b, root[f[:, k]], b_face)
    a, b = a[d.kept], b[d.kept]
    x0 = v[d.kept]
    g = np.einsum("nij,nj->ni", a, x0) + b
    w, u = np.linalg.eigh(a)
    keep = w > rel * w[:, -1:]
    coef = -np.einsum("nij,ni->nj", u, g) / np.where(keep, w, 1.0)
    return x0 + np.einsum("nij,nj->ni", u, np.where(keep, coef, 0.0))


def kept_of(mtx: sp.spmatrix) -> np.ndarray:
    """Fine index of each coarse vertex of a 0/1 selection matrix (coarse order)."""
    c = mtx.tocoo()
    assert np.allclose(c.data, 1.0) and np.bincount(c.row, minlength=mtx.shape[0]).max() == 1
    return c.col[np.argsort(c.row)]


# ------------------------------------------------------------------------------------------------


def table(theirs: types.ModuleType, topo: str, n: int, repeat: int) -> None:
    v, f = face_template(n, topology=topo)
    check_shim(v, f)
    assert flipped(v, f) == 0
    target = -(-n // 4)
    la0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    cf, mtx = theirs.qslim_decimator_transformer(_Mesh(v=v, f=f), factor=0.25)
    t_coma, c_coma = time.perf_counter() - t0, time.process_time() - c0
    la1 = os.getloadavg()[0]
    coma_kept = kept_of(mtx)
    cv = mtx @ v
    assert np.array_equal(cv, v[coma_kept])

    d = decimate(v, f, factor=4)
    nf = len(d.faces)
    others = peers()
    fns = {"meshkit": lambda: decimate(v, f, factor=4)}
    fns["meshkit + repositioning"] = lambda: reposition(v, f, decimate(v, f, factor=4))
    fns.update({name: (lambda run=run: run(v, f, nf)) for name, run in others.items()})
    med = alternate(fns, repeat)
    meshes = {"CoMA qslim_decimator_transformer": (cv, cf), "meshkit.decimate": (d.vertices, d.faces),
              "meshkit + quadric-optimal repositioning (post-pass)": (reposition(v, f, d), d.faces)}
    meshes.update({name: tuple(np.asarray(x) for x in run(v, f, nf)) for name, run in others.items()})
    secs = [t_coma, *med.values()]

    print(f"### template '{topo}', {n:,} vertices, {len(f):,} faces -> target {target:,} vertices (um)\n")
    core = rings_from_rim(v, f) >= RINGS
    area = face_normals(v, f)[1].sum()
    print(f"| decimator | vertices | faces | mean err um | max err um | mean err um, >= {RINGS} rings from the rim "
          "| boundary vertices | area / fine area | flipped faces | time s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, (mv, mf)), s in zip(meshes.items(), secs, strict=True):
        e = error_um(v, mv, mf)
        ratio = face_normals(np.asarray(mv, float), np.asarray(mf, np.int64))[1].sum() / area
        print(f"| {name} | {len(mv):,} | {len(mf):,} | {e.mean():.2f} | {e.max():.1f} | {e[core].mean():.2f} "
              f"| {len(boundary_vertices(mf)):,} | {ratio:.4f} | {flipped(mv, mf)} | {s:.3g} |")
    both = np.intersect1d(coma_kept, d.kept).size
    union = np.union1d(coma_kept, d.kept).size
    print(f"\nCoMA time: one run ({t_coma:.1f} s wall, {c_coma:.1f} s CPU, load average {la0:.2f} -> {la1:.2f}); "
          f"the others: median of {repeat} alternated runs (repositioning includes its decimate).")
    print(f"Kept vertices shared by meshkit and CoMA: {both:,} of {len(d.kept):,} / {len(coma_kept):,} "
          f"(Jaccard {both / union:.3f}); identical set: {both == len(d.kept) == len(coma_kept)}.")
    cfs = np.sort(np.asarray(cf), axis=1)
    dup = len(cfs) - len(np.unique(cfs, axis=0))
    e = np.sort(np.concatenate([cfs[:, [0, 1]], cfs[:, [1, 2]], cfs[:, [0, 2]]]), axis=1)
    _, cnt = np.unique(e, axis=0, return_counts=True)
    print(f"Fine mesh: {len(boundary_vertices(f)):,} boundary vertices, {core.sum():,} of {n:,} vertices >= {RINGS} rings "
          f"from the rim. Fine boundary vertices kept: meshkit {np.isin(d.kept, boundary_vertices(f)).sum():,}, "
          f"CoMA {np.isin(coma_kept, boundary_vertices(f)).sum():,}.")
    print(f"CoMA's coarse mesh: {dup} duplicate faces, {(cnt > 2).sum()} edges in more than two faces.\n", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coma", help="their mesh_sampling.py, a checkout, or a bare git directory")
    ap.add_argument("--n", type=int, default=53_215, help="template vertices (default 53215)")
    ap.add_argument("--topology", nargs="+", default=["bfm", "rows"], choices=["bfm", "rows"])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of the fast decimators")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file, source = locate(args.coma, tmp)
        if file is None:
            print(f"skipped: CoMA's decimator not available ({source}); pass --coma PATH")
            return
        print(f"CoMA source: {source}; load average {os.getloadavg()[0]:.2f}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        theirs = load_theirs(file)
    for topo in args.topology:
        table(theirs, topo, args.n, args.repeat)


if __name__ == "__main__":
    main()
